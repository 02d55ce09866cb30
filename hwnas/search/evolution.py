"""Random, evolutionary (SPOS) and Pareto (NSGA-II style) search over a trained one-shot supernet.

Candidates violating `--max-macs/--max-params/--max-latency` are rejected before evaluation.
A candidate's accuracy is measured once (weights inherited, BatchNorm recalibrated) and kept in
`candidates.jsonl`; the search state is written after every generation, so a killed search
resumes where it was and re-evaluates nothing. Under torchrun each rank evaluates a share.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..arch import Architecture
from ..data import EpochLoader
from ..errors import HwnasError
from ..io import atomic_write_text
from ..report.plots import pareto_plot
from ..spaces import SpaceSpec, load_layerwise_space
from ..supernet import Supernet, extract_model
from ..train.distributed import Dist, init_distributed, shutdown
from ..train.session import RunData, _say, check_identities, open_run_data, space_overrides
from ..train.trainer import evaluate_model
from .config import SearchConfig
from .constraints import Constraints, constraints_for
from .evaluate import recalibrate_bn
from .paths import Path as Choices
from .paths import uniform_path, within_budget


class PathEvaluator:
    """Accuracy of supernet paths with inherited weights, cached by path."""

    def __init__(self, supernet: Supernet, data: RunData, cfg: SearchConfig, device: torch.device) -> None:
        self.supernet, self.device, self.cfg = supernet, device, cfg
        self.preprocess = data.preprocess
        val = data.val if not cfg.eval_images else data.val.subset(torch.arange(min(cfg.eval_images, len(data.val))))
        self.val_loader = EpochLoader(val, cfg.batch_size, train=False)
        self.calib_loader = EpochLoader(data.train, cfg.batch_size, train=True, seed=cfg.seed + 2)
        self.cache: dict[tuple[int, ...], float] = {}

    def accuracy(self, path: Choices) -> float:
        model = extract_model(self.supernet, path).to(self.device)
        recalibrate_bn(model, self.calib_loader, self.preprocess, self.device, self.cfg.recalibrate_batches)
        return evaluate_model(model, self.val_loader, self.preprocess, self.device)["val_top1"]

    def evaluate(self, paths: Sequence[Choices], ctx: Dist) -> list[tuple[tuple[int, ...], float]]:
        """Evaluate the paths not in the cache (each rank a share); return the new (path, accuracy) pairs."""
        todo = list(dict.fromkeys(tuple(p) for p in paths if tuple(p) not in self.cache))
        mine = [(p, self.accuracy(list(p))) for p in todo[ctx.rank :: ctx.world]]
        if ctx.enabled:
            gathered: list[Any] = [None] * ctx.world
            dist.all_gather_object(gathered, mine)
            mine = [pair for part in gathered for pair in part]
        order = {p: k for k, p in enumerate(todo)}
        new = sorted(((tuple(p), acc) for p, acc in mine), key=lambda pair: order[pair[0]])  # as one process would
        self.cache.update(new)
        return new


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a = (accuracy, cost) is no worse in both and better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and a != b


def non_dominated_sort(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Indices of `points` in fronts: the first front is non-dominated, and so on."""
    remaining = set(range(len(points)))
    fronts = []
    while remaining:
        front = sorted(i for i in remaining if not any(_dominates(points[j], points[i]) for j in remaining))
        fronts.append(front)
        remaining -= set(front)
    return fronts


class SupernetSearch:
    """The state of a random/evolution/pareto search and the rules that move it forward."""

    def __init__(
        self,
        cfg: SearchConfig,
        space: SpaceSpec,
        constraints: Constraints,
        evaluator: PathEvaluator,
        ctx: Dist,
        run_dir: Path,
    ) -> None:
        self.cfg, self.space, self.constraints, self.evaluator, self.ctx = cfg, space, constraints, evaluator, ctx
        self.run_dir = run_dir
        self.counts = [len(layer.candidates) for layer in space.layers]
        self.rng = random.Random(cfg.seed)
        self.generation = 0
        self.population: list[Choices] = []
        self.history: list[dict[str, Any]] = []

    # ---- persistence --------------------------------------------------------------------------------
    def record(self, path: tuple[int, ...], accuracy: float) -> dict[str, Any]:
        costs = self.constraints.cost(path)
        return {
            "choices": [la.candidates[i] for la, i in zip(self.space.layers, path, strict=True)],
            "path": list(path),
            "val_top1": accuracy,
            "macs": costs["macs"] * 1e6,
            "params": costs["params"] * 1e6,
            **({"latency_ms": costs["latency"]} if "latency" in costs else {}),
        }

    def load(self) -> None:
        """Continue from `candidates.jsonl` and `search_state.json` if a killed run left them."""
        log = self.run_dir / "candidates.jsonl"
        if log.is_file():
            for line in log.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the kill
                self.evaluator.cache[tuple(rec["path"])] = rec["val_top1"]
        state_file = self.run_dir / "search_state.json"
        if state_file.is_file():
            state = json.loads(state_file.read_text())
            self.generation, self.population = state["generation"], state["population"]
            self.history = state["history"]
            version, internal, gauss = state["rng"]
            self.rng.setstate((version, tuple(internal), gauss))

    def save(self) -> None:
        if not self.ctx.main:
            return
        version, internal, gauss = self.rng.getstate()
        state = {
            "generation": self.generation,
            "population": self.population,
            "history": self.history,
            "rng": [version, list(internal), gauss],
        }
        atomic_write_text(self.run_dir / "search_state.json", json.dumps(state))

    def evaluate(self, paths: Sequence[Choices]) -> None:
        new = self.evaluator.evaluate(paths, self.ctx)
        if self.ctx.main and new:
            with open(self.run_dir / "candidates.jsonl", "a") as f:
                for path, acc in new:
                    f.write(json.dumps(self.record(path, acc)) + "\n")

    # ---- the strategies -----------------------------------------------------------------------------
    def random_path(self) -> Choices:
        return within_budget(lambda: uniform_path(self.counts, self.rng), self.constraints.fits)

    def mutate(self, parent: Choices) -> Choices:
        def draw() -> Choices:
            return [
                self.rng.randrange(n) if self.rng.random() < self.cfg.mutation_prob else i
                for i, n in zip(parent, self.counts, strict=True)
            ]

        return within_budget(draw, self.constraints.fits)

    def crossover(self, a: Choices, b: Choices) -> Choices:
        return within_budget(lambda: [self.rng.choice(pair) for pair in zip(a, b, strict=True)], self.constraints.fits)

    def ranked(self) -> list[tuple[int, ...]]:
        """Every evaluated path, best first: by accuracy (evolution) or by front, then accuracy (pareto)."""
        paths = list(self.evaluator.cache)
        if self.cfg.strategy != "pareto":
            return sorted(paths, key=lambda p: (-self.evaluator.cache[p], p))
        points = [(self.evaluator.cache[p], self.constraints.cost(p)[self.cfg.pareto_cost]) for p in paths]
        return [
            paths[i]
            for front in non_dominated_sort(points)
            for i in sorted(front, key=lambda i: (-points[i][0], paths[i]))
        ]

    def run(self) -> None:
        cfg = self.cfg
        if cfg.strategy == "random":
            wanted = [self.random_path() for _ in range(cfg.random_iteration)]
            for start in range(0, len(wanted), 50):  # evaluated in blocks, so a kill loses little
                self.evaluate(wanted[start : start + 50])
            return
        if not self.population:
            self.population = [self.random_path() for _ in range(cfg.population)]
        while self.generation < cfg.generation_num:
            self.evaluate(self.population)
            parents = [list(p) for p in self.ranked()[: cfg.parent_num]]
            best = parents[0]
            self.history.append(
                {
                    "generation": self.generation + 1,
                    "best_val_top1": self.evaluator.cache[tuple(best)],
                    "evaluated": len(self.evaluator.cache),
                }
            )
            _say(
                self.ctx,
                f"generation {self.generation + 1}/{cfg.generation_num}: best val top-1 "
                f"{self.history[-1]['best_val_top1']:.2f}% ({len(self.evaluator.cache)} evaluated)",
            )
            children = [self.mutate(self.rng.choice(parents)) for _ in range(cfg.mutation_num)]
            children += [
                self.crossover(self.rng.choice(parents), self.rng.choice(parents)) for _ in range(cfg.crossover_num)
            ]
            children += [self.random_path() for _ in range(max(0, cfg.population - len(children)))]
            self.population = children
            self.generation += 1
            self.save()


def search_supernet(cfg: SearchConfig, resuming: bool = False) -> Any:
    """Search a trained one-shot supernet; write arch.json (pareto: the front too), candidates, a plot."""
    from .session import SearchOutcome

    if cfg.supernet is None:
        raise HwnasError(f"--strategy {cfg.strategy} needs --supernet RUN_DIR (a run of `hwnas supernet train`)")
    if cfg.strategy != "random" and cfg.population < cfg.parent_num:
        raise HwnasError(f"--population {cfg.population} is smaller than --parent-num {cfg.parent_num}")
    weights = Path(cfg.supernet) / "supernet.pt"
    if not weights.is_file():
        raise HwnasError(f"--supernet {cfg.supernet}: no supernet.pt (a finished `hwnas supernet train` run)")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    space = load_layerwise_space(cfg.space, f"search --strategy {cfg.strategy}")
    ctx, device = init_distributed(cfg.device)
    try:
        data = open_run_data(cfg, space.input_size)
        check_identities(cfg, data.train, data.classes)
        space = space.with_knobs(
            input_size=data.shape, num_classes=len(data.classes), **space_overrides(cfg, False, space.name)
        )
        if state.get("space_fingerprint") != space.fingerprint():
            raise HwnasError(
                f"--supernet {cfg.supernet}: it was trained on another space, input size or number of "
                f"classes than {cfg.space} with --data {cfg.data}"
            )
        need_latency = cfg.strategy == "pareto" and cfg.pareto_cost == "latency"
        constraints = constraints_for(space, cfg, progress=cfg.progress and ctx.main, need_latency=need_latency)
        supernet = Supernet(space)
        supernet.load_state_dict(state["model"])
        run_dir = Path(cfg.run_dir) if cfg.run_dir else Path("runs") / f"search-{cfg.strategy}-{space.name}"
        from ..train.session import _agree

        run_dir = _agree(run_dir, ctx)
        if not resuming and (run_dir / "candidates.jsonl").exists():
            raise HwnasError(f"--run-dir {run_dir} already holds a search; continue it with --resume {run_dir}")
        if ctx.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg.run_dir = str(run_dir)
            import yaml

            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        search = SupernetSearch(
            cfg, space, constraints, PathEvaluator(supernet.to(device), data, cfg, device), ctx, run_dir
        )
        search.load()
        search.run()
        summary: dict[str, Any] = {}
        arch_path = None
        if ctx.main:
            summary, arch_path = _write_results(search, space, run_dir)
        return SearchOutcome(run_dir, arch_path, summary, ctx.main)
    finally:
        shutdown(ctx)


def _write_results(search: SupernetSearch, space: SpaceSpec, run_dir: Path) -> tuple[dict[str, Any], Path]:
    cfg = search.cfg
    records = [search.record(p, acc) for p, acc in search.evaluator.cache.items()]
    cost_key = {"latency": "latency_ms", "macs": "macs", "params": "params"}[cfg.pareto_cost]
    points = [(r["val_top1"], r.get(cost_key, 0.0)) for r in records]
    front = non_dominated_sort(points)[0] if records else []
    best = max(records, key=lambda r: r["val_top1"])
    meta = {
        "strategy": cfg.strategy,
        "supernet": cfg.supernet,
        "run": str(run_dir),
        "val_top1_inherited": best["val_top1"],
        "macs": best["macs"],
        "params": best["params"],
        "evaluated": len(records),
    }
    arch_path = Architecture.from_space(space, best["choices"], meta).save(run_dir / "arch.json")
    if cfg.strategy == "pareto":
        for k, i in enumerate(sorted(front, key=lambda i: points[i][1])):
            Architecture.from_space(
                space, records[i]["choices"], {**meta, "val_top1_inherited": records[i]["val_top1"]}
            ).save(run_dir / f"front_{k:02d}.json")
    buffer = io.StringIO()
    fields = ["val_top1", "macs", "params", *(["latency_ms"] if "latency_ms" in records[0] else []), "choices"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in sorted(records, key=lambda r: -r["val_top1"]):
        writer.writerow({**r, "choices": " ".join(r["choices"])})
    atomic_write_text(run_dir / "candidates.csv", buffer.getvalue())
    pareto_plot(
        points,
        front,
        cost_key,
        run_dir / "search.png",
        f"{cfg.strategy} on {space.name}: {len(records)} candidates, front highlighted",
    )
    summary = {
        "arch": str(arch_path),
        "choices": best["choices"],
        "val_top1_inherited": best["val_top1"],
        "evaluated": len(records),
        "front": [records[i]["choices"] for i in front],
        "history": search.history,
    }
    atomic_write_text(run_dir / "result.json", json.dumps(summary, indent=1))
    _say(
        Dist(),
        f"best: {' '.join(best['choices'])} (val top-1 {best['val_top1']:.2f}% with supernet weights, "
        f"{best['macs'] / 1e6:.2f}M MACs); wrote {arch_path}, candidates.csv, search.png",
    )
    return summary, arch_path
