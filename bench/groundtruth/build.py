"""Train every architecture of the ground-truth space stand-alone, several seeds each, and write the table.

    python bench/groundtruth/build.py                      # all 256 architectures x 3 seeds, 2 processes
    python bench/groundtruth/build.py --archs 12 --seeds 2 --out /tmp/gt.json    # a calibration subset

Every run uses one recipe (RECIPE below, `hwnas train`'s Trainer and data pipeline) on the bundled digits
at their native 8x8: it trains on the 1,437 training images and reports top-1 on the fixed 360-image
test pool after the last epoch (the weights a run ships; nothing is chosen on that pool). Finished runs
are appended to `runs.jsonl` beside the table as they end, so an interrupted build resumes where it
stopped; the table (`digits8.json`) is written atomically at the end with each architecture's mean and
spread over seeds, its MACs and parameters, the latency its layers sum to in the shipped cost table
(`latency_table.json`, measured here with 1 thread at batch 64) and its latency measured end to end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SPACE = HERE / "space.yaml"
TABLE = HERE / "digits8.json"
LATENCY_TABLE = HERE / "latency_table.json"
LATENCY_BATCH = 64  # at batch 1 an 8x8 layer costs its call overhead whatever its op; at 64 the ops differ 30x
RECIPE = {
    "data": "digits",
    "input": "1x8x8",
    "epochs": 6,
    "batch_size": 64,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "crop_padding": 1,
    "flip": False,
}
log = logging.getLogger("groundtruth")


def all_choices(space) -> list[list[str]]:
    return [list(c) for c in itertools.product(*(layer.candidates for layer in space.layers))]


def key(choices: list[str]) -> str:
    return " ".join(choices)


def train_once(task: tuple[list[str], int, dict]) -> dict:
    """One stand-alone training of `choices` with `seed`; returns the final test top-1 and the time it took."""
    choices, seed, recipe = task
    from hwnas.arch import Architecture
    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.model import build_model
    from hwnas.pipeline import open_run_data
    from hwnas.spaces import load_space

    torch.set_num_threads(1)
    cfg = TrainConfig(**recipe, seed=seed, progress=False)
    space = load_space(str(SPACE))
    data = open_run_data(cfg, space.input_size)
    torch.manual_seed(seed)
    model = build_model(Architecture.from_space(space, choices))
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        trainer = Trainer(
            model, cfg, train_set=data.train, val_set=data.val, preprocess=data.preprocess, device=torch.device("cpu")
        )
        trainer.fit()
    seconds = time.perf_counter() - start
    last = trainer.history[-1]
    return {"arch": key(choices), "seed": seed, "test_top1": last["val_top1"], "seconds": seconds}


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


def measure_costs(space, choices: list[list[str]], known: dict[str, dict]) -> dict[str, dict]:
    """MACs, params, the cost table's latency sum and measured end-to-end latency of every architecture
    (taken from `known`, an earlier table, where it has them)."""
    from hwnas.arch import Architecture
    from hwnas.cost import measure_latency, profile_arch
    from hwnas.cost.build import build_table
    from hwnas.cost.table import CostTable
    from hwnas.model import build_model

    if LATENCY_TABLE.exists():
        table = CostTable.load(LATENCY_TABLE)
    else:
        table = build_table(space, device="cpu", threads=1, batch=LATENCY_BATCH)
        table.save(LATENCY_TABLE)
    out = {}
    for i, c in enumerate(choices):
        if key(c) in known:
            out[key(c)] = known[key(c)]
            continue
        arch = Architecture.from_space(space, c)
        profile = profile_arch(arch)
        measured = measure_latency(
            build_model(arch), space.input_size, threads=1, batch=LATENCY_BATCH, min_run_time=0.2
        )
        out[key(c)] = {
            "macs": profile.macs,
            "params": profile.params,
            "latency_ms": table.predict(space, c),
            "measured_latency_ms": measured.median_ms,
        }
        if i % 32 == 0:
            log.info("costs: %d/%d", i + 1, len(choices))
    return out


def summarize(space, choices: list[list[str]], runs: dict, seeds: int, costs: dict) -> dict:
    archs = []
    for c in choices:
        accs = [runs[(key(c), s)]["test_top1"] for s in range(seeds)]
        archs.append(
            {
                "choices": c,
                "test_top1": accs,
                "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "train_seconds": statistics.fmean(runs[(key(c), s)]["seconds"] for s in range(seeds)),
                **costs[key(c)],
            }
        )
    means = [a["mean"] for a in archs]
    noise = statistics.fmean(a["std"] ** 2 for a in archs) ** 0.5  # pooled seed-to-seed std
    spread = max(means) - min(means)
    return {
        "format": "hwnas.groundtruth/1",
        "space": SPACE.name,
        "recipe": RECIPE,
        "seeds": seeds,
        "architectures": len(archs),
        "accuracy_spread": spread,
        "accuracy_std": statistics.stdev(means),
        "seed_noise": noise,
        "spread_over_noise": spread / noise,
        "std_over_noise": statistics.stdev(means) / noise,
        "latency_note": "latency_ms: the cost table's sum (latency_table.json, CPU, 1 thread, batch 64); "
        "measured_latency_ms: the whole network timed on the machine that built this table",
        "archs": archs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--archs", type=int, default=0, help="a random subset of this many (0: all)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes (1 thread each)")
    parser.add_argument("--out", type=Path, default=TABLE)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe (calibration only)")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe (calibration only)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from hwnas.io import atomic_write_text
    from hwnas.spaces import load_space

    recipe = dict(RECIPE)
    for name in ("epochs", "lr"):
        if getattr(args, name) is not None:
            recipe[name] = getattr(args, name)
    space = load_space(str(SPACE))
    choices = all_choices(space)
    if args.archs:
        import random

        choices = random.Random(0).sample(choices, args.archs)
    runs_path = args.out.with_name(args.out.stem + ".runs.jsonl")
    runs = read_runs(runs_path)
    todo = [(c, s, recipe) for c in choices for s in range(args.seeds) if (key(c), s) not in runs]
    log.info("%d architectures x %d seeds: %d runs to go (%d done)", len(choices), args.seeds, len(todo), len(runs))
    start = time.perf_counter()
    with open(runs_path, "a") as sink, multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for i, row in enumerate(pool.imap_unordered(train_once, todo), 1):
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            runs[(row["arch"], row["seed"])] = row
            if i % 20 == 0 or i == len(todo):
                rate = i / (time.perf_counter() - start)
                log.info("%d/%d runs, %.1f runs/s, %.0f s to go", i, len(todo), rate, (len(todo) - i) / rate)
    known = {}
    if args.out.exists():
        fields = ("macs", "params", "latency_ms", "measured_latency_ms")
        known = {key(a["choices"]): {f: a[f] for f in fields} for a in json.loads(args.out.read_text())["archs"]}
    table = summarize(space, choices, runs, args.seeds, measure_costs(space, choices, known))
    table["recipe"] = recipe
    atomic_write_text(args.out, json.dumps(table, indent=1))
    log.info(
        "%d architectures: accuracy %.2f-%.2f%% (spread %.2f points, std %.2f), seed noise (std) %.2f: "
        "spread %.1fx the noise, std %.1fx",
        len(choices),
        min(a["mean"] for a in table["archs"]),
        max(a["mean"] for a in table["archs"]),
        table["accuracy_spread"],
        table["accuracy_std"],
        table["seed_noise"],
        table["spread_over_noise"],
        table["std_over_noise"],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
