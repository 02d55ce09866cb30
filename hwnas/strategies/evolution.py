"""Random, evolutionary (SPOS) and Pareto (NSGA-II style) search over a trained one-shot supernet.

The rules (`SearchRules`) run against any evaluator with a `cache` and `evaluate(paths, ctx)`;
`PathEvaluator` scores paths of a supernet. Candidates violating `--max-macs/--max-params/--max-latency`
are rejected before evaluation, and a child already evaluated is drawn again (SPOS). One of the limits may
take several values: `LimitSearches` then ships one network per value from one shared cache (evolution: one
evolution per value; random, pareto: one search within the loosest). Before searching, a health check scores
paths drawn from the whole space against chance and warns when the supernet cannot rank anything.
A candidate's accuracy is measured once (weights inherited, BatchNorm recalibrated) and kept in
`candidates.jsonl`; every search's state is written after every generation, so a killed search
resumes where it was and re-evaluates nothing. Under torchrun each rank evaluates a share.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from .constraints import Constraints, constraints_each, limits_of
from .evaluate import path_network
from .health import supernet_health, within_limits_health
from .inherited import Shippable, finetune_epochs, inherited_note, make_shippable, ship
from .paths import PathIndices, uniform_path, within_limits
from .registry import register_strategy
from .trained import check_supernet, read_supernet

FRESH_TRIES = 10  # draws per child before giving up on one not evaluated yet (SPOS: 10 per child wanted)
HEALTH_SEED = 12345  # the health check's paths: the same for every budget and --seed, so its verdict is the supernet's
TOP_UP_PATHS = 10  # paths evaluated within a limit that nothing the search evaluated meets (random, pareto)
TOP_UP_SEED_OFFSET = 54321  # their generator: --seed + this + the limit's index


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
        seed: int | None = None,
    ) -> None:
        self.cfg, self.counts, self.constraints, self.evaluator = cfg, list(counts), limits, evaluator
        self.ctx = ctx or Dist()
        self.rng = random.Random(cfg.seed if seed is None else seed)
        self.label = ""  # which limit's search, in its log lines, when a run searches several
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
        """Every evaluated path within the limits (the cache may hold other limits' paths), best first: by accuracy
        (evolution) or by front, then accuracy (pareto)."""
        paths = [p for p in self.evaluator.cache if self.constraints.fits(p)]
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
                f"generation {self.generation + 1}/{cfg.generation_num}{self.label}: best val top-1 "
                f"{self.history[-1]['best_val_top1']:.2f}% ({len(self.evaluator.cache)} evaluated)",
            )
            self.population = self.offspring(parents)
            self.generation += 1
            self.save()


class SupernetSearch(SearchRules):
    """The search rules over a space within one set of limits, with every evaluation logged to candidates.jsonl;
    `persist` (called after every generation) writes the run's search state."""

    def __init__(
        self,
        cfg: SupernetSearchOptions,
        space: SpaceSpec,
        constraints: Constraints,
        evaluator: Evaluator,
        ctx: Dist,
        run_dir: Path,
        seed: int | None = None,
        persist: Callable[[], None] | None = None,
    ) -> None:
        counts = [len(layer.candidates) for layer in space.layers]
        super().__init__(cfg, counts, constraints, evaluator, ctx, seed)
        self.space, self.run_dir, self.persist = space, run_dir, persist

    def record(self, path: tuple[int, ...], accuracy: float) -> dict[str, Any]:
        return candidate_record(self.space, self.constraints, path, accuracy)

    def state(self) -> dict[str, Any]:
        """This search's state for search_state.json: its limits, generation, population, history and generator."""
        version, internal, gauss = self.rng.getstate()
        return {
            "limit": self.constraints.limits,
            "generation": self.generation,
            "population": self.population,
            "history": self.history,
            "rng": [version, list(internal), gauss],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a state `state()` wrote."""
        self.generation, self.population = state["generation"], state["population"]
        self.history = state["history"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))

    def save(self) -> None:
        if self.persist is not None:
            self.persist()

    def evaluate(self, paths: Sequence[PathIndices]) -> list[tuple[tuple[int, ...], float]]:
        new = super().evaluate(paths)
        if self.ctx.main and new:
            lines = "".join(json_text(self.record(path, acc)) + "\n" for path, acc in new)
            append_text(self.run_dir / "candidates.jsonl", lines, "candidates file")
        return new


def candidate_record(
    space: SpaceSpec, constraints: Constraints, path: Sequence[int], accuracy: float
) -> dict[str, Any]:
    """A candidates.jsonl line: the choices, the path, its inherited val top-1 and its costs."""
    costs = constraints.cost(path)
    return {
        "choices": [la.candidates[i] for la, i in zip(space.layers, path, strict=True)],
        "path": list(path),
        "val_top1": accuracy,
        "macs": costs["macs"] * 1e6,
        "params": costs["params"] * 1e6,
        **({"latency_ms": costs["latency"]} if "latency" in costs else {}),
    }


class LimitSearches:
    """A run's searches over one evaluator and one candidates.jsonl, for one set of limits or several (tightest
    first): evolution runs SPOS's evolution once per set, each with its own state and generator (seed --seed + i),
    all continuing from the shared evaluations; random and pareto search once within the loosest set. Each set's
    pick is the most accurate evaluated path within it. search_state.json holds every search's state."""

    def __init__(
        self,
        cfg: SupernetSearchOptions,
        space: SpaceSpec,
        limits: Sequence[Constraints],
        evaluator: Evaluator,
        ctx: Dist,
        run_dir: Path,
    ) -> None:
        self.cfg, self.space, self.limits, self.evaluator, self.ctx = cfg, space, list(limits), evaluator, ctx
        self.run_dir = run_dir
        searched = self.limits if cfg.strategy == "evolution" else self.limits[-1:]
        self.searches = [self.search_within(c, cfg.seed + i) for i, c in enumerate(searched)]
        for search in self.searches if len(self.searches) > 1 else ():
            search.label = f" ({search.constraints.describe()})"

    def search_within(self, constraints: Constraints, seed: int) -> SupernetSearch:
        return SupernetSearch(
            self.cfg, self.space, constraints, self.evaluator, self.ctx, self.run_dir, seed, persist=self.save
        )

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
            for search, saved in zip(self.searches, state.get("searches", [state]), strict=False):
                search.restore(saved)  # a state of one search alone: written before several limits were searched

    def save(self) -> None:
        if self.ctx.main:
            state = {"searches": [search.state() for search in self.searches]}
            atomic_write_text(self.run_dir / "search_state.json", json_text(state))

    def run(self) -> None:
        """Every search from where its state is, then a few paths within each limit no evaluated path meets."""
        for search in self.searches:
            search.run()
        for i, constraints in enumerate(self.limits):
            if not self.within(constraints):
                self.top_up(constraints, self.cfg.seed + TOP_UP_SEED_OFFSET + i)

    def within(self, constraints: Constraints) -> list[tuple[int, ...]]:
        """The evaluated paths within `constraints`, in the order they were evaluated."""
        return [path for path in self.evaluator.cache if constraints.fits(path)]

    def top_up(self, constraints: Constraints, seed: int) -> None:
        """Evaluate TOP_UP_PATHS paths within `constraints` (drawn from `seed`, so a resumed run draws the same)."""
        if self.ctx.main:
            warn_user(
                f"no path evaluated within the loosest limits meets {constraints.describe()}: evaluating "
                f"{TOP_UP_PATHS} random paths within it"
            )
        search = self.search_within(constraints, seed)
        search.evaluate(search.distinct(TOP_UP_PATHS, search.uniform, set(self.evaluator.cache)))

    def picks(self, top: int = 1) -> list[list[tuple[int, ...]]]:
        """Per set of limits, tightest first, the `top` most accurate evaluated paths within it, best first."""
        cache = self.evaluator.cache
        return [sorted(self.within(c), key=lambda p: (-cache[p], p))[:top] for c in self.limits]

    def history(self) -> list[dict[str, Any]]:
        """The generations of every search, each with the limits it searched within."""
        return [{**h, "limit": s.constraints.limits} for s in self.searches for h in s.history]


def holds_search(path: Path) -> bool:
    """Whether `path` holds a search over a trained supernet (its evaluated candidates)."""
    return (path / "candidates.jsonl").exists()


def search_trained_supernet(run: Run) -> Outcome:
    """Search a trained one-shot supernet within one set of limits or several (one value each of the limit given
    several); write each pick's architecture file and weights (`finetuned_finalists`, `inherited.ship`),
    candidates and a plot (pareto: the front too). One set ships arch.json and model.pt; several ship limit_<i>/
    for each, and arch.json and model.pt for the loosest."""
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
    limits = constraints_each(space, cfg, table, run.user_latency_model())
    supernet = Supernet(space)
    supernet.load_state_dict(state["model"])
    directory = run.open_dir(f"{cfg.strategy}-{space.name}")
    evaluator = PathEvaluator(supernet.to(run.device), data, cfg, run.device)
    health = check_health(evaluator, space, limits, len(data.classes), run.ctx)
    run.write_config()
    searches = LimitSearches(cfg, space, limits, evaluator, run.ctx, directory.path)
    searches.load()
    searches.run()

    def results() -> dict[str, Any]:
        finalists = finetuned_finalists(searches, supernet, data, cfg, run.device)
        paths = [path for path, _, _ in finalists]
        summary, picks = write_results(searches, paths, space, directory.path, health, data.pretrained_cfg)
        summary["shipped"] = [
            ship_pick(pick, network, trials, space, data, cfg, run.device, directory.path)
            for pick, (_, network, trials) in zip(picks, finalists, strict=True)
        ]
        for pick, shipped in zip(picks, summary["shipped"], strict=True):
            tell(
                run.ctx,
                f"shipped {pick.constraints.describe()}: {directory.path / shipped['weights']} with "
                f"{shipped['arch']}: {shipped['note']}",
            )
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
    evaluator: PathEvaluator, space: SpaceSpec, limits: Sequence[Constraints], num_classes: int, ctx: Dist
) -> dict[str, Any]:
    """The supernet health check (hwnas.strategies.health) outside the search: paths drawn uniformly from the whole
    space with HEALTH_SEED, whatever the limits and --seed, so the verdict is the supernet's; the mean of the paths
    within each set of limits is added as information."""
    counts = [len(layer.candidates) for layer in space.layers]
    rng = random.Random(HEALTH_SEED)
    scored: list[tuple[list[int], float]] = []

    def evaluate(path: list[int]) -> float:
        scored.append((path, evaluator.accuracy(path)))
        return scored[-1][1]

    health = supernet_health(evaluate, lambda: uniform_path(counts, rng), num_classes)
    limited = [(c.describe(), c.limits, c.fits) for c in limits if c.limits]
    health["within_limits"], said = within_limits_health(scored, limited)
    health["message"] += said
    if health["healthy"]:
        tell(ctx, health["message"])
    elif evaluator.cfg.require_healthy:
        raise HwnasError(f"{health['message']} Stopped by --require-healthy.")
    elif ctx.main:
        warn_user(health["message"])
    return health


@dataclass(frozen=True)
class Pick:
    """The network shipped for one set of limits: its record, and the files (relative to the run directory) its
    architecture and weights go to, the first of each the one result.json names."""

    constraints: Constraints
    record: dict[str, Any]
    arch_files: tuple[str, ...]
    weight_files: tuple[str, ...]


def pick_folders(count: int) -> list[tuple[str, ...]]:
    """Where each of `count` picks (tightest first) is written: the run directory for one; limit_<i>/ for several,
    and the run directory too for the loosest, so commands that take a run directory find its files."""
    if count == 1:
        return [("",)]
    return [(f"limit_{i}", *(("",) if i == count - 1 else ())) for i in range(count)]


def finetuned_finalists(
    searches: LimitSearches, supernet: Supernet, data: RunData, cfg: SupernetSearchOptions, device: torch.device
) -> list[tuple[tuple[int, ...], Shippable, list[dict[str, Any]]]]:
    """Per set of limits, tightest first: its `--finetune-top` most accurate candidates (inherited weights) each made
    shippable (fine-tuned), and the one most accurate on the validation split then (its path and network), with
    every finalist's figures. A candidate that is a finalist under several limits is fine-tuned once. Inherited
    accuracies rank paths only roughly: on fonts16, the four best architectures within the target lie within 0.6
    points, less than the seed noise, and the supernets' picks among them varied (bench/RESULTS.md)."""
    top = cfg.finetune_top if finetune_epochs(cfg, len(data.train)) else 1
    made: dict[tuple[int, ...], Shippable] = {}
    out = []
    for paths in searches.picks(top):
        for path in paths:
            if path not in made:
                choices = [la.candidates[i] for la, i in zip(searches.space.layers, path, strict=True)]
                made[path] = make_shippable(supernet, choices, data, cfg, device)
        trials = [
            {
                "choices": made[p].choices,
                "val_top1_inherited": searches.evaluator.cache[p],
                **({"val_top1_finetuned": made[p].val_top1} if made[p].val_top1 is not None else {}),
            }
            for p in paths
        ]
        # the first (the most accurate inherited) among equals; one finalist, or none fine-tuned: that one
        best = max(paths, key=lambda p: made[p].val_top1 or 0.0)
        out.append((best, made[best], trials))
    return out


def write_results(
    searches: LimitSearches,
    paths: Sequence[tuple[int, ...]],
    space: SpaceSpec,
    run_dir: Path,
    health: dict[str, Any],
    pretrained_cfg: PretrainedCfg,
) -> tuple[dict[str, Any], list[Pick]]:
    """Each pick's architecture file (`paths`: one per set of limits, tightest first), candidates.csv, search.png
    (pareto: front_NN.json too); returns the run's summary (its arch, choices and val_top1_inherited: the loosest
    limits' pick) and the picks, tightest first."""
    cfg, cache, loosest = searches.cfg, searches.evaluator.cache, searches.limits[-1]
    records = [candidate_record(space, loosest, p, acc) for p, acc in cache.items()]
    meta = {"strategy": cfg.strategy, "supernet": cfg.supernet, "run": str(run_dir), "evaluated": len(records)}
    picks = []
    for constraints, path, folders in zip(searches.limits, paths, pick_folders(len(searches.limits)), strict=True):
        record = candidate_record(space, constraints, path, cache[path])
        arch = Architecture.from_space(
            space, record["choices"], {**meta, **pick_meta(record, constraints)}, pretrained_cfg
        )
        arch_files = tuple(str(Path(folder) / "arch.json") for folder in folders)
        for name in arch_files:
            (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
            arch.save(run_dir / name)
        picks.append(Pick(constraints, record, arch_files, tuple(str(Path(f) / "model.pt") for f in folders)))
    front = write_candidates(records, cfg, space, run_dir, meta, pretrained_cfg)
    best = picks[-1].record
    summary = {
        "arch": str(run_dir / "arch.json"),
        "choices": best["choices"],
        "val_top1_inherited": best["val_top1"],
        "evaluated": len(records),
        "front": [records[i]["choices"] for i in front],
        "history": searches.history(),
        "supernet_health": health,
    }
    tell(
        Dist(),
        f"best: {' '.join(best['choices'])} (val top-1 {best['val_top1']:.2f}% with supernet weights, "
        f"{best['macs'] / 1e6:.2f}M MACs); wrote {run_dir / 'arch.json'}, candidates.csv, search.png",
    )
    return summary, picks


def pick_meta(record: dict[str, Any], constraints: Constraints) -> dict[str, Any]:
    """What an architecture file's meta says of its pick: its limits, inherited val top-1 and costs."""
    return {
        "limit": constraints.limits,
        "val_top1_inherited": record["val_top1"],
        "macs": record["macs"],
        "params": record["params"],
    }


def write_candidates(
    records: list[dict[str, Any]],
    cfg: SupernetSearchOptions,
    space: SpaceSpec,
    run_dir: Path,
    meta: dict[str, Any],
    pretrained_cfg: PretrainedCfg,
) -> list[int]:
    """candidates.csv, search.png (accuracy against cost, front highlighted), pareto's front_NN.json; returns the
    front (indices of `records`)."""
    traded = cfg.pareto_cost if isinstance(cfg, ParetoConfig) else "latency"  # the front the plot highlights
    cost_key = {"latency": "latency_ms", "macs": "macs", "params": "params"}[traded]
    points = [(r["val_top1"], r.get(cost_key, 0.0)) for r in records]
    front = non_dominated_sort(points)[0] if records else []
    if cfg.strategy == "pareto":
        for k, i in enumerate(sorted(front, key=lambda i: points[i][1])):
            Architecture.from_space(
                space,
                records[i]["choices"],
                {
                    **meta,
                    "val_top1_inherited": records[i]["val_top1"],
                    "macs": records[i]["macs"],
                    "params": records[i]["params"],
                },
                pretrained_cfg,
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
    return front


def retrain_command(arch_path: Path, cfg: SupernetSearchOptions, space: SpaceSpec) -> str:
    """The command that trains a shipped architecture stand-alone (as DNAS's result gives one)."""
    return (
        f"hwnas train {shlex.quote(str(arch_path))} --data {shlex.quote(cfg.data)} "
        f"--input {'x'.join(map(str, space.input_size))} --epochs {max(cfg.epochs, 10)}"
        + (f" --head {cfg.head}" if cfg.head != "softmax" else "")
    )


def ship_pick(
    pick: Pick,
    network: Shippable,
    finalists: list[dict[str, Any]],
    space: SpaceSpec,
    data: RunData,
    cfg: SupernetSearchOptions,
    device: torch.device,
    run_dir: Path,
) -> dict[str, Any]:
    """Write a pick's weights; return its result.json entry (its limits, files, figures, the finalists it was chosen
    among, a note that says what the weights are and the command that retrains it)."""
    record = pick.record
    shipped = ship(network, data, cfg, device, run_dir, pick.weight_files)
    retrain = retrain_command(run_dir / pick.arch_files[0], cfg, space)
    return {
        "limit": pick.constraints.limits,
        "arch": pick.arch_files[0],
        "weights": shipped["weights"],
        "choices": record["choices"],
        **{key: shipped[key] for key in ("test_top1", "test_top5", "test_images")},
        "val_top1_inherited": record["val_top1"],
        "macs": record["macs"],
        "params": record["params"],
        **({"latency_ms": record["latency_ms"]} if "latency_ms" in record else {}),
        "inherited": shipped["inherited"],
        "recalibration_batches": shipped["recalibration_batches"],
        "finetune_epochs": shipped["finetune_epochs"],
        "finalists": finalists,
        "note": inherited_note(shipped, retrain),
        "retrain": retrain,
    }
