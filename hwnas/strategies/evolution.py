"""Random, evolutionary (SPOS) and Pareto (NSGA-II style) search over a trained one-shot supernet.

The rules (`SearchRules`) run against any evaluator with a `cache` and `evaluate(paths, ctx)`;
`PathEvaluator` scores paths of a supernet. Candidates violating `--max-macs/--max-params/--max-latency`
are rejected before evaluation, and a child already evaluated is drawn again (SPOS). Before searching,
a health check scores random paths against chance and warns when the supernet cannot rank anything.
A candidate's accuracy is measured once (weights inherited, BatchNorm recalibrated) and kept in
`candidates.jsonl`; the search state is written after every generation, so a killed search
resumes where it was and re-evaluates nothing. Under torchrun each rank evaluates a share.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist

from ..arch import Architecture
from ..data import EpochLoader
from ..engine.distributed import Dist
from ..engine.trainer import evaluate_model
from ..errors import HwnasError
from ..io import append_text, atomic_write_text, json_text
from ..log import warn_user
from ..pipeline import Outcome, Run, RunData, tell
from ..pretrained_cfg import PretrainedCfg
from ..report.plots import pareto_plot
from ..spaces import SpaceSpec, load_layerwise_space
from ..supernet import Supernet
from .config import EvolutionConfig, ParetoConfig, RandomSearchConfig, SupernetSearchOptions
from .constraints import Constraints, constraints_for, limits_of
from .evaluate import path_network
from .health import supernet_health
from .inherited import ship_inherited
from .paths import PathIndices, uniform_path, within_limits
from .registry import register_strategy
from .trained import check_supernet, read_supernet

FRESH_TRIES = 10  # draws per child before giving up on one not evaluated yet (SPOS: 10 per child wanted)
HEALTH_SEED_OFFSET = 12345  # the health check draws its own paths: the search's random stream stays as it was


class PathEvaluator:
    """Accuracy of supernet paths with inherited weights, cached by path."""

    def __init__(self, supernet: Supernet, data: RunData, cfg: SupernetSearchOptions, device: torch.device) -> None:
        self.supernet, self.device, self.cfg = supernet, device, cfg
        self.preprocess = data.preprocess
        val = data.val if not cfg.eval_images else data.val.subset(torch.arange(min(cfg.eval_images, len(data.val))))
        self.val_loader = EpochLoader(val, cfg.batch_size, train=False)
        self.calib_loader = EpochLoader(data.train, cfg.batch_size, train=True, seed=cfg.seed + 2)
        self.cache: dict[tuple[int, ...], float] = {}

    def accuracy(self, path: PathIndices) -> float:
        model = path_network(
            self.supernet, path, self.calib_loader, self.preprocess, self.device, self.cfg.recalibrate_batches
        )
        return evaluate_model(model, self.val_loader, self.preprocess, self.device)["val_top1"]

    def evaluate(self, paths: Sequence[PathIndices], ctx: Dist) -> list[tuple[tuple[int, ...], float]]:
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


class Evaluator(Protocol):
    """What the search rules need from an evaluator: a cache of scored paths and a way to score more."""

    cache: dict[tuple[int, ...], float]

    def evaluate(self, paths: Sequence[PathIndices], ctx: Dist) -> list[tuple[tuple[int, ...], float]]: ...


class PathLimits(Protocol):
    """What the search rules need from the constraints: a verdict and the costs of a path."""

    def fits(self, path: Sequence[int]) -> bool: ...

    def cost(self, path: Sequence[int]) -> dict[str, float]: ...


class SearchRules:
    """Random, evolutionary (SPOS) and Pareto search over any evaluator: the state and the rules that move it."""

    def __init__(
        self,
        cfg: SupernetSearchOptions,
        counts: Sequence[int],
        limits: PathLimits,
        evaluator: Evaluator,
        ctx: Dist | None = None,
    ) -> None:
        self.cfg, self.counts, self.constraints, self.evaluator = cfg, list(counts), limits, evaluator
        self.ctx = ctx or Dist()
        self.rng = random.Random(cfg.seed)
        self.generation = 0
        self.population: list[PathIndices] = []
        self.history: list[dict[str, Any]] = []

    def evaluate(self, paths: Sequence[PathIndices]) -> list[tuple[tuple[int, ...], float]]:
        """Score the paths not scored yet; return the new (path, accuracy) pairs."""
        return self.evaluator.evaluate(paths, self.ctx)

    def save(self) -> None:
        """Called after every generation; a search that persists its state writes it here."""

    # ---- the strategies -----------------------------------------------------------------------------
    def fresh(self, draw: Callable[[], PathIndices], seen: set[tuple[int, ...]]) -> PathIndices | None:
        """A path from `draw` within the limits and not in `seen` (then added to it); None after FRESH_TRIES draws."""
        for _ in range(FRESH_TRIES):
            path = within_limits(draw, self.constraints.fits)
            if tuple(path) not in seen:
                seen.add(tuple(path))
                return path
        return None

    def uniform(self) -> PathIndices:
        return uniform_path(self.counts, self.rng)

    def mutate(self, parents: Sequence[PathIndices]) -> PathIndices:
        """A random parent with each layer redrawn with probability --mutation-prob (SPOS)."""
        parent = self.rng.choice(parents)
        return [
            self.rng.randrange(n) if self.rng.random() < self.cfg.mutation_prob else i
            for i, n in zip(parent, self.counts, strict=True)
        ]

    def crossover(self, parents: Sequence[PathIndices]) -> PathIndices:
        """Each layer from one of two random parents (SPOS)."""
        a, b = self.rng.choice(parents), self.rng.choice(parents)
        return [self.rng.choice(pair) for pair in zip(a, b, strict=True)]

    def distinct(self, count: int, draw: Callable[[], PathIndices], seen: set[tuple[int, ...]]) -> list[PathIndices]:
        """Up to `count` paths from `draw`, none in `seen`; fewer when fresh ones are not found."""
        found = (self.fresh(draw, seen) for _ in range(count))
        return [path for path in found if path is not None]

    def offspring(self, parents: Sequence[PathIndices]) -> list[PathIndices]:
        """The next population: children by mutation and crossover, then random paths, none evaluated before."""
        cfg, seen = self.cfg, set(self.evaluator.cache)
        children = self.distinct(cfg.mutation_num, lambda: self.mutate(parents), seen)
        children += self.distinct(cfg.crossover_num, lambda: self.crossover(parents), seen)
        return children + self.distinct(max(0, cfg.population - len(children)), self.uniform, seen)

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
        """Random: --random-iteration distinct paths. Evolution/pareto: generations from where the state is."""
        cfg = self.cfg
        if cfg.strategy == "random":
            wanted = self.distinct(cfg.random_iteration, self.uniform, set())
            for start in range(0, len(wanted), 50):  # evaluated in blocks, so a kill loses little
                self.evaluate(wanted[start : start + 50])
            return
        if not self.population:
            self.population = self.distinct(cfg.population, self.uniform, set())
        while self.generation < cfg.generation_num:
            self.evaluate(self.population)
            parents = [list(p) for p in self.ranked()[: cfg.parent_num]]
            self.history.append(
                {
                    "generation": self.generation + 1,
                    "best_val_top1": self.evaluator.cache[tuple(parents[0])],
                    "evaluated": len(self.evaluator.cache),
                }
            )
            tell(
                self.ctx,
                f"generation {self.generation + 1}/{cfg.generation_num}: best val top-1 "
                f"{self.history[-1]['best_val_top1']:.2f}% ({len(self.evaluator.cache)} evaluated)",
            )
            self.population = self.offspring(parents)
            self.generation += 1
            self.save()


class SupernetSearch(SearchRules):
    """The search rules over a space, with every evaluation logged and the state saved for --resume."""

    def __init__(
        self,
        cfg: SupernetSearchOptions,
        space: SpaceSpec,
        constraints: Constraints,
        evaluator: Evaluator,
        ctx: Dist,
        run_dir: Path,
    ) -> None:
        super().__init__(cfg, [len(layer.candidates) for layer in space.layers], constraints, evaluator, ctx)
        self.space, self.run_dir = space, run_dir

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
        atomic_write_text(self.run_dir / "search_state.json", json_text(state))

    def evaluate(self, paths: Sequence[PathIndices]) -> list[tuple[tuple[int, ...], float]]:
        new = super().evaluate(paths)
        if self.ctx.main and new:
            lines = "".join(json_text(self.record(path, acc)) + "\n" for path, acc in new)
            append_text(self.run_dir / "candidates.jsonl", lines, "candidates file")
        return new


def holds_search(path: Path) -> bool:
    """Whether `path` holds a search over a trained supernet (its evaluated candidates)."""
    return (path / "candidates.jsonl").exists()


def search_trained_supernet(run: Run) -> Outcome:
    """Search a trained one-shot supernet; write arch.json (pareto: the front too), candidates, a plot, and the
    pick's inherited weights as model.pt (`inherited.ship_inherited`)."""
    cfg: SupernetSearchOptions = run.cfg
    if cfg.supernet is None:
        raise HwnasError(f"--strategy {cfg.strategy} needs --supernet RUN_DIR (a run of `hwnas supernet train`)")
    if cfg.strategy != "random" and cfg.population < cfg.parent_num:
        raise HwnasError(f"--population {cfg.population} is smaller than --parent-num {cfg.parent_num}")
    state = read_supernet(cfg.supernet)
    space = load_layerwise_space(cfg.space, f"search --strategy {cfg.strategy}")
    data = run.open_data(space.input_size, choosing=True)
    space = run.fit(space, data)
    check_supernet(state, space, cfg.supernet, cfg.space, cfg.data)
    need_latency = cfg.strategy == "pareto" and cfg.pareto_cost == "latency"
    table = run.cost_table(space, need_latency or "latency" in limits_of(cfg), per_layer=False)
    constraints = constraints_for(space, cfg, table, run.user_latency_model())
    supernet = Supernet(space)
    supernet.load_state_dict(state["model"])
    directory = run.open_dir(f"{cfg.strategy}-{space.name}")
    evaluator = PathEvaluator(supernet.to(run.device), data, cfg, run.device)
    health = check_health(evaluator, space, constraints, len(data.classes), run.ctx)
    run.write_config()
    search = SupernetSearch(cfg, space, constraints, evaluator, run.ctx, directory.path)
    search.load()
    search.run()

    def results() -> dict[str, Any]:
        summary = write_results(search, space, directory.path, health, data.pretrained_cfg)
        shipped = ship_inherited(supernet, summary["choices"], data, cfg, run.device, directory.path)
        summary["shipped"] = shipped
        held_out = (
            f"test top-1 {shipped['test_top1']:.2f}% on {shipped['test_images']} held-out images"
            if "test_top1" in shipped
            else "no held-out test pool in the data to measure it on"
        )
        tell(run.ctx, f"shipped {directory.path / 'model.pt'}: the pick with its inherited weights, {held_out}")
        return summary

    return run.finish(results)


PICKS = {
    "random": "the best of random architectures",
    "evolution": "by SPOS's evolution",
    "pareto": "the front of accuracy against a cost",
}
for name, options in (("random", RandomSearchConfig), ("evolution", EvolutionConfig), ("pareto", ParetoConfig)):
    register_strategy(
        name, options=options, trains="nothing: it searches --supernet", picks=PICKS[name], holds_run=holds_search
    )(search_trained_supernet)


def check_health(
    evaluator: PathEvaluator, space: SpaceSpec, constraints: Constraints, num_classes: int, ctx: Dist
) -> dict[str, Any]:
    """The supernet health check (hwnas.strategies.health) on random paths within the limits, outside the search."""
    cfg, counts = evaluator.cfg, [len(layer.candidates) for layer in space.layers]
    rng = random.Random(cfg.seed + HEALTH_SEED_OFFSET)
    health = supernet_health(
        evaluator.accuracy, lambda: within_limits(lambda: uniform_path(counts, rng), constraints.fits), num_classes
    )
    if health["healthy"]:
        tell(ctx, health["message"])
    elif cfg.require_healthy:
        raise HwnasError(f"{health['message']} Stopped by --require-healthy.")
    elif ctx.main:
        warn_user(health["message"])
    return health


def write_results(
    search: SupernetSearch,
    space: SpaceSpec,
    run_dir: Path,
    health: dict[str, Any],
    pretrained_cfg: PretrainedCfg,
) -> dict[str, Any]:
    """arch.json (pareto: front_NN.json too), candidates.csv and search.png; returns the run's summary."""
    cfg = search.cfg
    records = [search.record(p, acc) for p, acc in search.evaluator.cache.items()]
    traded = cfg.pareto_cost if isinstance(cfg, ParetoConfig) else "latency"  # the front the plot highlights
    cost_key = {"latency": "latency_ms", "macs": "macs", "params": "params"}[traded]
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
    arch_path = Architecture.from_space(space, best["choices"], meta, pretrained_cfg).save(run_dir / "arch.json")
    if cfg.strategy == "pareto":
        for k, i in enumerate(sorted(front, key=lambda i: points[i][1])):
            Architecture.from_space(
                space, records[i]["choices"], {**meta, "val_top1_inherited": records[i]["val_top1"]}, pretrained_cfg
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
        "supernet_health": health,
    }
    tell(
        Dist(),
        f"best: {' '.join(best['choices'])} (val top-1 {best['val_top1']:.2f}% with supernet weights, "
        f"{best['macs'] / 1e6:.2f}M MACs); wrote {arch_path}, candidates.csv, search.png",
    )
    return summary
