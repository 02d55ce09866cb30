"""Train the architectures of a ground-truth task stand-alone, several seeds each, and write its table.

    python bench/groundtruth/build.py fonts16                 # the whole task (its task.yaml), 2 processes
    python bench/groundtruth/build.py digits8 --archs 12 --seeds 2 --out /tmp/gt.json   # a calibration subset
    python bench/groundtruth/build.py fonts16 --check 5       # retrain 5 finished runs, compare exactly

A task is a folder beside this script: `task.yaml` (the data, the recipe, how many seeds and architectures),
`space.yaml` (the space), and what the build writes: `table.json`, `runs.jsonl`, `latency_table.json`.
Every run uses the task's one recipe (`hwnas train`'s Trainer and data pipeline, one thread) and reports
top-1 on the data's fixed test pool after the last epoch (the weights a run ships; nothing is chosen on that
pool). Finished runs are appended to `runs.jsonl` as they end, so an interrupted build resumes where it
stopped; the table is written atomically at the end with each architecture's mean and spread over seeds, its
MACs and parameters, the latency its layers sum to in the task's cost table (measured here with 1 thread at
the task's latency batch) and its latency measured end to end, and with the CPU, library versions and
determinism settings it was built under.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

HERE = Path(__file__).resolve().parent
log = logging.getLogger("groundtruth")

Spec = list[str] | dict[str, Any]  # a layer-wise architecture's choices, or a cell architecture's genotype


@dataclass(frozen=True)
class Task:
    """A ground truth: its folder, space, recipe (TrainConfig options), seeds and architecture count."""

    name: str
    folder: Path
    recipe: dict[str, Any]
    seeds: int
    architectures: int | None  # None: every architecture of the space
    latency_batch: int
    description: str
    search: dict[str, dict[str, Any]]  # bench/search_quality.py's settings for this task: {quick: {...}, full: {...}}
    none_edges: bool = False  # a cell task: its genotypes may keep `none` on an edge (degenerate cells included)

    @property
    def space(self) -> Path:
        return self.folder / "space.yaml"

    @property
    def table(self) -> Path:
        return self.folder / "table.json"

    @property
    def latency_table(self) -> Path:
        return self.folder / "latency_table.json"

    def choices(self) -> list[Spec]:
        """The task's architectures: all of a layer-wise space or a sample of it drawn with seed 0; for a cell
        space, that many distinct genotypes drawn as DARTS derives them (two inputs a node; `none` on an edge only
        with `none_edges`; one cell type when the space shares its cells)."""
        from hwnas.spaces import load_space

        space = load_space(str(self.space))
        if space.kind == "cell":
            return distinct_genotypes(space, self.architectures or 0, self.none_edges)
        every = all_choices(space)
        return every if self.architectures is None else random.Random(0).sample(every, self.architectures)


def tasks() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/task.yaml"))


def load_task(name: str) -> Task:
    path = HERE / name / "task.yaml"
    if not path.is_file():
        raise SystemExit(f"ground truth {name!r}: no {path}; expected one of {', '.join(tasks())}")
    raw = yaml.safe_load(path.read_text())
    count = raw.get("architectures", "all")
    return Task(
        name=name,
        folder=path.parent,
        recipe=raw["recipe"],
        seeds=raw["seeds"],
        architectures=None if count == "all" else int(count),
        latency_batch=raw["latency_batch"],
        description=raw["description"],
        search=raw.get("search", {}),
        none_edges=bool(raw.get("none_edges", False)),
    )


def all_choices(space) -> list[list[str]]:
    return [list(c) for c in itertools.product(*(layer.candidates for layer in space.layers))]


def distinct_genotypes(space, count: int, none_edges: bool = False) -> list[Spec]:
    from hwnas.spaces.genotype import random_genotype

    rng, out = random.Random(0), {}
    while len(out) < count:
        genotype = random_genotype(space.ops, space.nodes, rng, none_edges, space.shared_cells).to_dict()
        out.setdefault(key(genotype), genotype)
    return list(out.values())


def key(spec: Spec) -> str:
    """An architecture as one line: its choices, or its genotype's cells (`op<input ...`, normal | reduce)."""
    if isinstance(spec, dict):
        return " | ".join(" ".join(f"{op}<{j}" for op, j in spec[cell]) for cell in ("normal", "reduce"))
    return " ".join(spec)


def spec_of(line: str) -> Spec:
    """The inverse of `key`."""
    if " | " not in line:
        return line.split()
    cells = [[[op, int(j)] for op, j in (edge.split("<") for edge in part.split())] for part in line.split(" | ")]
    concat = list(range(2, len(cells[0]) // 2 + 2))
    return {"normal": cells[0], "normal_concat": concat, "reduce": cells[1], "reduce_concat": concat}


def architecture(space, spec: Spec):
    """The `hwnas.arch.Architecture` of a task's architecture."""
    from hwnas.arch import Architecture
    from hwnas.spaces.genotype import Genotype

    if isinstance(spec, dict):
        return Architecture.from_genotype(space, Genotype.from_dict(spec, space.ops))
    return Architecture.from_space(space, spec)


_DATA: dict[str, Any] = {}  # per worker process: the opened data of a recipe, reused by its next runs

# The float path every ground-truth run trains with, whatever hwnas's defaults or the machine's CPU become: NCHW,
# depthwise convs as torch's conv (hwnas's CPU speed-ups, channels_last and the small-map matrix form, change the
# rounding), and PyTorch's, oneDNN's and MKL's kernels held to AVX2 (an AVX-512 CPU picks other kernels, which
# round differently: the tables built on one EPYC did not reproduce on another until these were set). Pinned so
# that `--check` reproduces a table bit for bit after a speed-up lands, on any x86-64 CPU with AVX2.
PINNED_NUMERICS = "NCHW; depthwise convs as torch's conv (hwnas.blocks.depthwise.conv_arithmetic)"
PINNED_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def pin_isa() -> None:
    """Hold the kernels of the training processes this one spawns to PINNED_ISA (read when they load torch)."""
    os.environ.update(PINNED_ISA)


def train_once(job: tuple[Spec, int, dict, str], pinned: bool = True) -> dict:
    """One stand-alone training of `spec` with `seed`; returns the final test top-1 and the time it took.

    `pinned`: with the table's float path (PINNED_NUMERICS), as the build and `--check` train; else with the
    defaults a user's `hwnas train` gets (what bench/search_quality.py times to price random search)."""
    spec, seed, recipe, space_path = job
    from hwnas.blocks.depthwise import conv_arithmetic
    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.model import build_model
    from hwnas.pipeline import open_run_data
    from hwnas.spaces import load_space

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = TrainConfig(**recipe, seed=seed, progress=False, **({"channels_last": False} if pinned else {}))
    space = load_space(space_path)
    data_key = json.dumps([recipe, seed, space_path])
    if data_key not in _DATA:
        _DATA.clear()
        _DATA[data_key] = open_run_data(cfg, space.input_size)
    data = _DATA[data_key]
    torch.manual_seed(seed)
    model = build_model(architecture(space, spec))
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()), conv_arithmetic() if pinned else contextlib.nullcontext():
        trainer = Trainer(
            model, cfg, train_set=data.train, val_set=data.val, preprocess=data.preprocess, device=torch.device("cpu")
        )
        trainer.fit()
    seconds = time.perf_counter() - start
    return {"arch": key(spec), "seed": seed, "test_top1": trainer.history[-1]["val_top1"], "seconds": seconds}


def read_runs(path: Path) -> dict[tuple[str, int], dict]:
    """Finished runs; a line cut short by an interruption is ignored (its run trains again)."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[(row["arch"], row["seed"])] = row
    return done


def environment() -> dict[str, Any]:
    """What a rebuild must match to reproduce the table exactly."""
    import matplotlib
    import numpy
    import PIL

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        info = dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in Path("/proc/cpuinfo").read_text().splitlines()[:30])
        )
        flags = set(info.get("flags", "").split())
        isa = [f for f in ("avx2", "avx512f") if f in flags]
        model = f"family {info.get('cpu family')}, model {info.get('model')}"
        cpu = f"{info.get('model name', cpu)} ({model}; {', '.join(isa)})"
    return {
        "cpu": cpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
        "threads_per_run": 1,
        "numerics": PINNED_NUMERICS,
        "kernels": PINNED_ISA,
        "determinism": "torch.use_deterministic_algorithms(True); torch.manual_seed(seed) before the model is "
        "built; data order, augmentation and splits from the run's seed (TrainConfig.seed); CPU only",
    }


def measure_costs(task: Task, space, choices: list[Spec], known: dict[str, dict]) -> dict[str, dict]:
    """MACs, params, the cost table's latency sum and measured end-to-end latency of every architecture
    (taken from `known`, an earlier table, where it has them)."""
    from hwnas.cost import measure_latency, profile_arch
    from hwnas.cost.build import build_table, entries_sum
    from hwnas.cost.table import CostTable
    from hwnas.model import build_model

    if task.latency_table.exists():
        table = CostTable.load(task.latency_table)
    else:
        table = build_table(space, device="cpu", threads=1, batch=task.latency_batch)
        table.save(task.latency_table)
    table_sum = entries_sum(table, space)
    out = {}
    for i, c in enumerate(choices):
        if key(c) in known:
            out[key(c)] = known[key(c)]
            continue
        arch = architecture(space, c)
        profile = profile_arch(arch)
        measured = measure_latency(
            build_model(arch), space.input_size, threads=1, batch=task.latency_batch, min_run_time=0.2
        )
        out[key(c)] = {
            "macs": profile.macs,
            "params": profile.params,
            "latency_ms": table_sum(arch) + table.offset_ms,
            "measured_latency_ms": measured.median_ms,
        }
        if i % 32 == 0:
            log.info("costs: %d/%d", i + 1, len(choices))
    return out


def summarize(task: Task, choices: list[Spec], runs: dict, seeds: int, costs: dict, recipe: dict) -> dict:
    archs = []
    for c in choices:
        accs = [runs[(key(c), s)]["test_top1"] for s in range(seeds)]
        archs.append(
            {
                "key": key(c),
                "genotype" if isinstance(c, dict) else "choices": c,
                "test_top1": accs,
                "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "train_seconds": statistics.fmean(runs[(key(c), s)]["seconds"] for s in range(seeds)),
                **costs[key(c)],
            }
        )
    return {
        "format": "hwnas.groundtruth/1",
        "task": task.name,
        "description": task.description,
        "space": task.space.name,
        "recipe": recipe,
        "seeds": seeds,
        "architectures": len(archs),
        **separation(archs),
        "environment": environment(),
        "latency_note": f"latency_ms: the cost table's sum ({task.latency_table.name}, CPU, 1 thread, batch "
        f"{task.latency_batch}); measured_latency_ms: the whole network timed on the machine that built this table",
        "archs": archs,
    }


def separation(archs: list[dict]) -> dict[str, float]:
    """How well the table tells architectures apart: the spread and std of their means, the top decile over the
    median, each also over the seed noise (the pooled seed-to-seed std of one run)."""
    means = sorted(a["mean"] for a in archs)
    noise = statistics.fmean(a["std"] ** 2 for a in archs) ** 0.5
    decile = statistics.fmean(means[int(0.9 * len(means)) :]) - statistics.median(means)
    spread, std = means[-1] - means[0], statistics.stdev(means)
    return {
        "accuracy_spread": spread,
        "accuracy_std": std,
        "seed_noise": noise,
        "top_decile_over_median": decile,
        "spread_over_noise": spread / noise if noise else None,  # None: one seed, no noise measured
        "std_over_noise": std / noise if noise else None,
        "decile_over_noise": decile / noise if noise else None,
    }


def check(task: Task, rows: int, jobs: int) -> int:
    """Retrain `rows` finished runs of the task (runs.jsonl: also of a build still going); say how far each lands
    from its recorded top-1. Exit status 0 when every one reproduces exactly."""
    ours = {key(spec) for spec in task.choices()}
    runs = {done: row for done, row in read_runs(task.folder / "runs.jsonl").items() if done[0] in ours}
    picks = random.Random(1).sample(sorted(runs), min(rows, len(runs)))
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        results = pool.map(train_once, [(spec_of(arch), seed, task.recipe, str(task.space)) for arch, seed in picks])
    exact = 0
    for row in results:
        want = runs[(row["arch"], row["seed"])]["test_top1"]
        exact += row["test_top1"] == want
        log.info("%s seed %d: %.4f%% now, %.4f%% recorded", row["arch"], row["seed"], row["test_top1"], want)
    recorded = json.loads(task.table.read_text()).get("environment", {}) if task.table.exists() else {}
    log.info("%d of %d runs reproduced exactly on %s", exact, len(picks), environment()["cpu"])
    log.info("the table records its build on %s", recorded.get("cpu", "no CPU (none recorded, or no table yet)"))
    return 0 if exact == len(picks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=tasks(), help="the ground truth: a folder beside this script")
    parser.add_argument("--seeds", type=int, default=None, help="default: the task's")
    parser.add_argument("--archs", type=int, default=0, help="a random subset of this many of the task's (0: all)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes (1 thread each)")
    parser.add_argument("--out", type=Path, default=None, help="default: the task's table.json")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe (calibration only)")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe (calibration only)")
    parser.add_argument("--check", type=int, default=0, metavar="N", help="retrain N finished runs, compare exactly")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from hwnas.io import atomic_write_text
    from hwnas.spaces import load_space

    task = load_task(args.task)
    pin_isa()
    if args.check:
        return check(task, args.check, args.jobs)
    recipe = dict(task.recipe)
    for name in ("epochs", "lr"):
        if getattr(args, name) is not None:
            recipe[name] = getattr(args, name)
    seeds = args.seeds or task.seeds
    out = args.out or task.table
    space = load_space(str(task.space))
    choices = task.choices()
    if args.archs:
        choices = random.Random(0).sample(choices, args.archs)
    runs_path = out.with_name("runs.jsonl") if args.out is None else out.with_name(out.stem + ".runs.jsonl")
    runs = read_runs(runs_path)
    todo = [(c, s, recipe, str(task.space)) for s in range(seeds) for c in choices if (key(c), s) not in runs]
    log.info("%d architectures x %d seeds: %d runs to go (%d done)", len(choices), seeds, len(todo), len(runs))
    start = time.perf_counter()
    with open(runs_path, "a") as sink, multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for i, row in enumerate(pool.imap_unordered(train_once, todo), 1):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            runs[(row["arch"], row["seed"])] = row
            if i % 20 == 0 or i == len(todo):
                rate = i / (time.perf_counter() - start)
                log.info("%d/%d runs, %.2f runs/s, %.0f s to go", i, len(todo), rate, (len(todo) - i) / rate)
    known = {}
    if out.exists():
        fields = ("macs", "params", "latency_ms", "measured_latency_ms")
        earlier = json.loads(out.read_text())["archs"]
        known = {a.get("key") or key(a["choices"]): {f: a[f] for f in fields} for a in earlier}
    table = summarize(task, choices, runs, seeds, measure_costs(task, space, choices, known), recipe)
    atomic_write_text(out, json.dumps(table, indent=1))
    log.info(
        "%d architectures: accuracy %.2f-%.2f%% (spread %.2f points, std %.2f), seed noise (std) %.2f: "
        "std %sx the noise, top decile %.2f points (%sx the noise) above the median",
        len(choices),
        min(a["mean"] for a in table["archs"]),
        max(a["mean"] for a in table["archs"]),
        table["accuracy_spread"],
        table["accuracy_std"],
        table["seed_noise"],
        f"{table['std_over_noise']:.1f}" if table["std_over_noise"] else "-",
        table["top_decile_over_median"],
        f"{table['decile_over_noise']:.1f}" if table["decile_over_noise"] else "-",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
