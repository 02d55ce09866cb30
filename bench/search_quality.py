"""Does the search work? Every strategy against random search at equal compute, on each ground truth.

    python bench/search_quality.py --task digits8          # 5 seeds, full settings
    python bench/search_quality.py --task all --quick      # every ground truth, shorter searches
    python bench/search_quality.py --task all --json       # one JSON object per ground truth, a line each

A ground truth (bench/groundtruth/TASK/table.json, made by bench/groundtruth/build.py TASK) holds
architectures of its space trained stand-alone with one recipe, several seeds each: an architecture's true
accuracy is its mean top-1 on the data's held-out test pool, its latency the sum of its entries in the task's
cost table (CPU, 1 thread). Each strategy runs the real `hwnas` search on the task's data (it never sees
that test pool) under a latency target, and is scored by:

- regret: the best true accuracy under the target minus the true accuracy of what it returned (an
  architecture over the target scores as the worst one under it);
- random_regret: the expected regret of random search given the same compute. Random search draws
  architectures from those within the target (the only ones it trains), trains each once with the
  ground-truth recipe (one seed, read from the table) and keeps the most accurate; the one it keeps is then
  judged by the mean of its other seeds, so the luck of the run it was picked on does not count. Its price,
  the time of one such training, is measured in this run: stand-alone trainings of architectures drawn
  within the target, with the defaults a user's `hwnas train` gets, queued among the strategies' jobs so
  they run under the same load (the median of them; the run prints how many and their spread);
- win_rate: over seeds, the probability that the strategy's regret is below that random search's;
  a strategy beats random search when its mean regret is lower and its win rate at least 70%, and meets the
  project's target when its mean regret is at most half random search's and its win rate at least 80%;
- budget_use: the returned architecture's latency over the target;
- shipped_gap (searches over a trained supernet): the pick's stand-alone true accuracy minus the test top-1
  of the weights the search ships (inherited from the supernet);
- supernet_trainings: each supernet's training time in stand-alone trainings at the price;
- many_targets: one uniform supernet searched once (Pareto) under three latency limits (the table's 20th, 30th
  and 50th percentiles), a network shipped per limit: each one's shipped_gap, whether it fits, and the supernet
  and search's seconds against training each network stand-alone (OFA's train once, deploy many);
- kendall_tau (one-shot supernets): rank correlation of inherited-weight accuracy with true accuracy. Every
  tau here has one reference: the mean of all seeds but one, averaged over which seed is left out. Beside
  them, tau_reference: one stand-alone training per architecture (the seed left out) against that same
  reference, what training every architecture once would rank. It is not an upper bound.

Every strategy runs with the options a user gets by default: the task's data (`--data`, `--input`), the
task's cost table (the target is in its units) and the search budget of --quick or full mode (epochs,
population, generations); nothing of the ground truth's training recipe. No search sees the test pool: the
layer-wise searches validate on their own split of the training images, and the test pool is read only to
score the weights a search ships, after its pick.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import logging
import math
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "groundtruth"))

import build as groundtruth  # noqa: E402  (bench/groundtruth/build.py)
from build import Task  # noqa: E402

log = logging.getLogger("search_quality")

DNAS_MODES = ("gumbel", "gumbel_hard", "softmax")
DARTS_VARIANTS: dict[str, dict[str, Any]] = {  # cell ground truths: DARTS with these options (DartsConfig)
    "first": {},
    "second": {"sec_approx": True},
    "first-skip1": {"max_skip": 1},  # P-DARTS's limit, for a 4-edge cell
    "first-pc4": {"partial_channels": 4},  # PC-DARTS
    "beta": {"beta_decay": 25.0},  # β-DARTS's regulariser, to its paper's final weight
    "drnas": {"mode": "dirichlet"},  # DrNAS
    "pt": {"select": "perturbation"},  # DARTS-PT on the DARTS search network
    "pt-uniform": {"mode": "uniform", "select": "perturbation"},  # DARTS-PT on a network trained with α fixed
    "rsps": {"mode": "random", "select": "sampled"},  # weight-sharing random search: the in-tool baseline
}
SAMPLINGS = ("uniform", "fair", "sandwich")
PICKERS = ("random", "evolution", "pareto")
RANDOM_TRIALS = 2000
WIN_RATE = 0.7  # beating random search: a lower mean regret, and a lower regret in at least this share of seeds
STRATEGY_FIELDS = (  # of each strategy, in --json (the inherited gap: one-shot pickers only)
    "regret",
    "random_regret",
    "win_rate",
    "beats_random",
    "meets_target",
    "budget_use",
    "shipped_gap",
    "shipped_gap_max",
    "parameter_free",  # cell searches: the share of parameter-free ops after each epoch (DARTS's collapse)
)
TARGET_SHARE, TARGET_WIN_RATE = 0.5, 0.8  # the project's target: at most half random search's regret, 80% of wins


@dataclass(frozen=True)
class Settings:
    seeds: int
    darts_epochs: int
    dnas_epochs: int
    supernet_epochs: int  # uniform (one path a step); fair and sandwich get as many path passes: ÷ paths a step
    population: int
    generations: int
    supernet_dnas_epochs: int  # differentiable search started from a trained supernet
    tau_archs: int  # architectures scored with inherited weights for Kendall's tau (0: all)


FULL = Settings(
    seeds=5,
    darts_epochs=10,
    dnas_epochs=16,
    supernet_epochs=40,
    population=20,
    generations=8,
    supernet_dnas_epochs=8,
    tau_archs=0,
)
QUICK = dataclasses.replace(  # shorter searches, as many seeds
    FULL, darts_epochs=4, dnas_epochs=8, supernet_epochs=16, population=12, generations=4, supernet_dnas_epochs=4,
    tau_archs=64,
)  # fmt: skip


def settings_for(task: Task, quick: bool, seeds: int | None) -> Settings:
    """QUICK or FULL with the task's own values (`search: {quick: ..., full: ...}` in its task.yaml: a task with
    more data trains fewer epochs), and `seeds` if given."""
    mode = "quick" if quick else "full"
    settings = dataclasses.replace(QUICK if quick else FULL, **task.search.get(mode, {}))
    return settings if seeds is None else dataclasses.replace(settings, seeds=seeds)


SEARCH_DATA = ("data", "input")  # what a search takes of a task's recipe: the images, nothing of the training


def common_options(task: Task, seed: int, run_dir: Path) -> dict[str, Any]:
    """The task's data and cost table; every other option is the strategy's default, as a user gets it."""
    return {
        **{k: task.recipe[k] for k in SEARCH_DATA},
        "space": str(task.space),
        "seed": seed,
        "progress": False,
        "device": "cpu",
        "run_dir": str(run_dir),
        "latency_table": str(task.latency_table),
    }


def quietly(fn, *args, **kwargs):
    """Run `fn` with its progress lines (stderr) swallowed."""
    with contextlib.redirect_stderr(io.StringIO()):
        return fn(*args, **kwargs)


def run_dnas(
    task: Task, mode: str, seed: int, target: float, settings: Settings, work: Path, extra: dict
) -> list[dict]:
    from hwnas.arch import Architecture
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.run import search

    cfg = DnasConfig(
        **{
            **common_options(task, seed, work / f"dnas-{mode}-{seed}"),
            "epochs": settings.dnas_epochs,
            "mode": mode,
            "target": target,
            **extra,
        }
    )
    start = time.perf_counter()
    outcome = quietly(search, cfg)
    seconds = time.perf_counter() - start
    choices = list(Architecture.load(outcome.arch_path).choices)
    return [{"strategy": f"dnas-{mode}", "seed": seed, "choices": choices, "seconds": seconds}]


def evolution_rules(settings: Settings) -> dict[str, int]:
    """The evolution and Pareto options of a budget: population x generations, a quarter of it parents, half of
    it children by mutation and half by crossover."""
    return {
        "population": settings.population,
        "generation_num": settings.generations,
        "parent_num": max(2, settings.population // 4),
        "mutation_num": settings.population // 2,
        "crossover_num": settings.population // 2,
    }


def quantile(latencies: list[float], q: float) -> float:
    """The `q` quantile of a table's latencies (the lower of two neighbours): how targets are set."""
    ordered = sorted(latencies)
    return ordered[int(q * (len(ordered) - 1))]


def paths_per_step(sampling: str, space) -> int:
    """Paths a supernet step trains: one (SPOS), every candidate of the widest layer (FairNAS), or the largest,
    the smallest and the random ones (the sandwich rule)."""
    from hwnas.strategies.oneshot import SANDWICH_RANDOM

    if sampling == "fair":
        return max(len(layer.candidates) for layer in space.layers)
    return 2 + SANDWICH_RANDOM if sampling == "sandwich" else 1


def run_darts(task: Task, variant: str, seed: int, settings: Settings, work: Path) -> list[dict]:
    """DARTS on a cell task's data with the search defaults a user gets (a search network of the task's cells),
    then its genotype trained stand-alone with the task's recipe on each of the task's seeds (not charged)."""
    from hwnas.arch import Architecture
    from hwnas.spaces import load_space
    from hwnas.strategies.config import DartsConfig
    from hwnas.strategies.run import search

    knobs = load_space(str(task.space)).knobs
    network = {"init_channels": knobs["init_channels"], "layers": knobs["layers"], "num_meta_node": knobs["nodes"]}
    cfg = DartsConfig(
        **{k: task.recipe[k] for k in SEARCH_DATA},
        **network,
        eval_init_channels=knobs["init_channels"],
        eval_layers=knobs["layers"],
        space=str(task.space),
        epochs=settings.darts_epochs,
        seed=seed,
        progress=False,
        device="cpu",
        run_dir=str(work / f"darts-{variant}-{seed}"),
        **DARTS_VARIANTS[variant],
    )
    start = time.perf_counter()
    arch_path = quietly(search, cfg).arch_path
    seconds = time.perf_counter() - start
    genotype = Architecture.load(arch_path).genotype.to_dict()
    epochs = sorted((arch_path.parent / "genotypes").glob("epoch_*.json"))
    free = [parameter_free_share(Architecture.load(path).genotype) for path in epochs]
    true = [groundtruth.train_once((genotype, s, task.recipe, str(task.space)))["test_top1"] for s in range(task.seeds)]
    return [
        {
            "strategy": f"darts-{variant}",
            "seed": seed,
            "key": groundtruth.key(genotype),
            "true_top1": true,
            "seconds": seconds,
            "parameter_free": free,
        }
    ]


PARAMETER_FREE = ("none", "skip_connect", "max_pool_3x3", "avg_pool_3x3")


def parameter_free_share(genotype) -> float:
    """The share of a genotype's edges (both cells) that carry an op without parameters: DARTS's collapse."""
    edges = [op for cell in ("normal", "reduce") for op, _ in genotype.edges(cell)]
    return sum(op in PARAMETER_FREE for op in edges) / len(edges)


def run_supernet_dnas(
    task: Task, sn_dir: Path, seed: int, target: float, settings: Settings, work: Path, run: str
) -> list[str]:
    """Differentiable search (hard Gumbel, FBNet's θ) that starts from a trained one-shot supernet's weights."""
    from hwnas.arch import Architecture
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.run import search

    cfg = DnasConfig(
        **common_options(task, seed, work / run),
        supernet=str(sn_dir),
        mode="gumbel_hard",
        epochs=settings.supernet_dnas_epochs,
        weight_warmup_epochs=0,
        target=target,
    )
    return list(Architecture.load(quietly(search, cfg).arch_path).choices)


def run_oneshot(
    task: Task, sampling: str, seed: int, target: float, settings: Settings, work: Path, extra: dict
) -> list[dict]:
    """Train one supernet, then pick from it three ways; each pick is charged the supernet's training time."""
    import torch

    from hwnas.arch import Architecture
    from hwnas.pipeline import open_run_data
    from hwnas.spaces import load_space
    from hwnas.strategies.config import RandomSearchConfig, SupernetConfig
    from hwnas.strategies.evolution import PathEvaluator
    from hwnas.strategies.registry import strategy
    from hwnas.strategies.run import search, train_supernet
    from hwnas.supernet import Supernet

    space = load_space(str(task.space))
    sn_dir = work / f"supernet-{sampling}-{seed}"
    epochs = max(1, settings.supernet_epochs // paths_per_step(sampling, space))
    options = common_options(task, seed, sn_dir)
    start = time.perf_counter()
    quietly(train_supernet, SupernetConfig(**{**options, "epochs": epochs, "sampling": sampling, **extra}))
    train_seconds = time.perf_counter() - start
    rows = []
    for picker in PICKERS:
        rules = (
            {"random_iteration": settings.population * settings.generations}
            if picker == "random"
            else evolution_rules(settings)
        )
        cfg = strategy(picker).options(
            **common_options(task, seed, work / f"{sampling}-{picker}-{seed}"),
            supernet=str(sn_dir),
            max_latency=target,
            **rules,
        )
        start = time.perf_counter()
        outcome = quietly(search, cfg)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "strategy": f"{sampling}-{picker}",
                "seed": seed,
                "choices": list(Architecture.load(outcome.arch_path).choices),
                "seconds": train_seconds + seconds,
                "health": outcome.summary.get("supernet_health"),
                "shipped_top1": shipped_top1(outcome.summary),
            }
        )
    start = time.perf_counter()
    choices = run_supernet_dnas(task, sn_dir, seed, target, settings, work, f"{sampling}-dnas-{seed}")
    rows.append(
        {
            "strategy": f"{sampling}-dnas",
            "seed": seed,
            "choices": choices,
            "seconds": train_seconds + time.perf_counter() - start,
        }
    )
    if sampling == SAMPLINGS[0]:
        rows.append(run_many_targets(task, sn_dir, seed, settings, work, train_seconds))
    cfg = RandomSearchConfig(**common_options(task, seed, sn_dir))
    data = open_run_data(cfg, space.input_size, choosing=True)
    supernet = Supernet(space)
    supernet.load_state_dict(torch.load(sn_dir / "supernet.pt", weights_only=True)["model"])
    evaluator = PathEvaluator(supernet, data, cfg, torch.device("cpu"))
    archs = task.choices()
    if settings.tau_archs and settings.tau_archs < len(archs):
        archs = random.Random(seed).sample(archs, settings.tau_archs)
    inherited = {groundtruth.key(c): evaluator.accuracy(supernet.path_indices(c)) for c in archs}
    rows.append({"strategy": f"{sampling}-supernet", "seed": seed, "inherited": inherited, "seconds": train_seconds})
    return rows


MANY_TARGETS = (0.2, 0.3, 0.5)  # latency quantiles of the table: one supernet searched once, a network shipped each


def run_many_targets(task: Task, sn_dir: Path, seed: int, settings: Settings, work: Path, trained: float) -> dict:
    """One Pareto search of the supernet with several latency limits (OFA's train once, deploy many): the networks
    it ships, and the seconds of the supernet and that search together."""
    from hwnas.strategies.registry import strategy
    from hwnas.strategies.run import search

    latencies = [a["latency_ms"] for a in json.loads(task.table.read_text())["archs"]]
    cfg = strategy("pareto").options(
        **common_options(task, seed, work / f"many-targets-{seed}"),
        supernet=str(sn_dir),
        max_latency=[quantile(latencies, q) for q in MANY_TARGETS],
        **evolution_rules(settings),
    )
    start = time.perf_counter()
    summary = quietly(search, cfg).summary
    shipped = [
        {"limit_ms": e["limit"]["latency"], "choices": e["choices"], "test_top1": e["test_top1"]}
        for e in summary["shipped"]
    ]
    return {
        "strategy": "many-targets",
        "seed": seed,
        "shipped": shipped,
        "seconds": trained + time.perf_counter() - start,
    }


def shipped_top1(summary: dict) -> float | None:
    """Held-out test top-1 of the network a search ships (the loosest limit's, where it ships one per limit)."""
    shipped = summary.get("shipped")
    entry = shipped[-1] if isinstance(shipped, list) and shipped else shipped  # the loosest limit's: `choices`
    return entry.get("test_top1") if isinstance(entry, dict) else None


PRICE_EVERY, PRICE_MIN = 2, 6  # one priced training queued after every 2 strategy jobs, 6 at least


def price_training(task: Task, target: float, seed: int) -> list[dict]:
    """One stand-alone training of an architecture drawn within the target (random search's population) with
    the ground-truth recipe and a user's defaults otherwise (not the table's pinned numerics): its seconds."""
    table = json.loads(task.table.read_text())["archs"]
    within = [a.get("genotype") or a["choices"] for a in table if a["latency_ms"] <= target]
    spec = random.Random(seed).choice(within)
    row = groundtruth.train_once((spec, seed, task.recipe, str(task.space)), pinned=False)
    return [{"strategy": "price", "seed": seed, "arch": row["arch"], "seconds": row["seconds"]}]


def run_job(job: tuple[str, str, str, int, float, Settings, str, dict]) -> list[dict]:
    name, kind, variant, seed, target, settings, work, extra = job
    import torch

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    task = groundtruth.load_task(name)
    if kind == "price":
        return price_training(task, target, seed)
    if kind == "dnas":
        return run_dnas(task, variant, seed, target, settings, Path(work), extra)
    if kind == "darts":
        return run_darts(task, variant, seed, settings, Path(work))
    return run_oneshot(task, variant, seed, target, settings, Path(work), extra)


class GroundTruth:
    """A task's table. Layer-wise tasks are searched under a latency target; cell tasks (DARTS) without one,
    and their regret is against the best of the table's genotypes, a sample of the space."""

    def __init__(self, path: Path, target: float | None, share: float, cell: bool = False) -> None:
        data = json.loads(path.read_text())
        self.meta = data
        self.cell = cell
        self.archs = {a.get("key") or groundtruth.key(a["choices"]): a for a in data["archs"]}
        latencies = [a["latency_ms"] for a in self.archs.values()]
        self.target = target if target is not None else quantile(latencies, share)
        if cell:
            self.target = float("inf")
        self.feasible = [a for a in self.archs.values() if a["latency_ms"] <= self.target]
        self.best = max(a["mean"] for a in self.feasible)
        self.worst = min(a["mean"] for a in self.feasible)
        self.seeds = min(len(a["test_top1"]) for a in self.archs.values())

    def true_accuracy(self, key: str, leave_out: int | None = None) -> float:
        """Mean test top-1 of architecture `key` over its seeds (all but `leave_out`)."""
        runs = self.archs[key]["test_top1"]
        return statistics.fmean(acc for s, acc in enumerate(runs) if s != leave_out)

    def regret(self, row: dict) -> float:
        """A strategy's regret: its pick's true accuracy (the table's, or trained by the benchmark for a cell
        task's genotype) below the best within the target; over the target it scores as the worst within."""
        if "true_top1" in row:
            return self.best - statistics.fmean(row["true_top1"])
        arch = self.archs[groundtruth.key(row["choices"])]
        return self.best - (arch["mean"] if arch["latency_ms"] <= self.target else self.worst)

    def random_regrets(self, evaluations: int, rng: random.Random) -> list[float]:
        """Regrets of RANDOM_TRIALS random searches that each train `evaluations` architectures once.

        A search picks by the accuracy of one seed's run; the architecture it keeps is then judged by the
        mean of its other seeds, so the luck that made it look best is not counted as its accuracy."""
        out = []
        for _ in range(RANDOM_TRIALS):
            drawn = [(rng.choice(self.feasible), rng.randrange(self.seeds)) for _ in range(evaluations)]
            picked, seed = max(drawn, key=lambda pair: pair[0]["test_top1"][pair[1]])
            others = [acc for s, acc in enumerate(picked["test_top1"]) if s != seed]
            out.append(self.best - statistics.fmean(others))
        return out


def kendall_tau(inherited: dict[str, float], truth: GroundTruth, leave_out: int | None = None) -> float:
    """Kendall's tau of `inherited` scores against true accuracy: the mean over all seeds, or over all but
    seed `leave_out`."""
    from scipy.stats import kendalltau

    keys = sorted(inherited)
    true = [truth.true_accuracy(k, leave_out) for k in keys]
    return float(kendalltau([inherited[k] for k in keys], true).statistic)


def single_run_tau(truth: GroundTruth) -> float:
    """How well one stand-alone training per architecture ranks the space: Kendall's tau of one seed's
    accuracy against the mean of the other seeds, averaged over which seed."""
    return statistics.fmean(
        kendall_tau({k: a["test_top1"][s] for k, a in truth.archs.items()}, truth, leave_out=s)
        for s in range(truth.seeds)
    )


def held_out_tau(inherited: dict[str, float], truth: GroundTruth) -> float:
    """`kendall_tau` against the mean of all seeds but one, averaged over which: the one reference of every tau
    this script reports, the same as `single_run_tau`'s."""
    return statistics.fmean(kendall_tau(inherited, truth, leave_out=s) for s in range(truth.seeds))


@dataclass(frozen=True)
class Price:
    """Random search's price: seconds of one stand-alone training of an architecture within the target."""

    seconds: float  # the median of the timed trainings
    samples: int
    low: float
    high: float
    basis: str  # "within_target": timed in this run; "whole_space_rescaled": an older run's rows (see price_of)

    def describe(self) -> str:
        how = (
            "stand-alone trainings of architectures within the target, timed in this run among the strategies"
            if self.basis == "within_target"
            else "an older run's trainings of architectures from the whole space, scaled by the table's median "
            "training time within the target over that of all"
        )
        return f"{self.seconds:.1f} s (median of {self.samples}, {self.low:.1f}-{self.high:.1f} s; {how})"


def price_of(rows: list[dict], truth: GroundTruth) -> Price:
    """From the rows' `price` trainings; rows saved before those existed hold `stand-alone` trainings of
    architectures drawn from the whole space, which train slower than those random search trains: their median
    is scaled by the ground truth's own ratio of median training times (within the target over all)."""
    timed = [r["seconds"] for r in rows if r["strategy"] == "price"]
    if timed:
        return Price(statistics.median(timed), len(timed), min(timed), max(timed), "within_target")
    old = [r["seconds"] for r in rows if r["strategy"] == "stand-alone"]
    within = statistics.median(a["train_seconds"] for a in truth.feasible)
    scale = within / statistics.median(a["train_seconds"] for a in truth.archs.values())
    return Price(statistics.median(old) * scale, len(old), min(old) * scale, max(old) * scale, "whole_space_rescaled")


def score(rows: list[dict], truth: GroundTruth, price: Price) -> tuple[dict[str, dict], dict[str, float]]:
    rng = random.Random(0)
    strategies: dict[str, dict] = {}
    for name in dict.fromkeys(r["strategy"] for r in rows if "choices" in r or "true_top1" in r):
        runs = [r for r in rows if r["strategy"] == name]
        regrets, random_means, wins, uses, evaluations = [], [], [], [], []
        for r in runs:
            regret = truth.regret(r)
            k = max(1, round(r["seconds"] / price.seconds))
            baseline = truth.random_regrets(k, rng)
            regrets.append(regret)
            random_means.append(statistics.fmean(baseline))
            wins.append(statistics.fmean(1.0 if b > regret else 0.5 if b == regret else 0.0 for b in baseline))
            if "choices" in r:
                uses.append(truth.archs[groundtruth.key(r["choices"])]["latency_ms"] / truth.target)
            evaluations.append(k)
        strategies[name] = {
            "regret": statistics.fmean(regrets),
            "random_regret": statistics.fmean(random_means),
            "win_rate": statistics.fmean(wins),
            "beats_random": statistics.fmean(regrets) < statistics.fmean(random_means)
            and statistics.fmean(wins) >= WIN_RATE,
            "meets_target": statistics.fmean(regrets) <= TARGET_SHARE * statistics.fmean(random_means)
            and statistics.fmean(wins) >= TARGET_WIN_RATE,
            "budget_use": statistics.fmean(uses) if uses else None,  # None: no latency target (cells)
            "over_budget": sum(u > 1 for u in uses),
            "seconds": statistics.fmean(r["seconds"] for r in runs),
            "random_trainings": statistics.fmean(evaluations),
            "picks": [r.get("choices") or r["key"] for r in runs],
            "regrets": regrets,
        }
        shipped = [r for r in runs if r.get("shipped_top1") is not None]
        if shipped:  # the weights the search ships (inherited, BatchNorm re-estimated) against the pick trained alone
            gaps = [truth.archs[groundtruth.key(r["choices"])]["mean"] - r["shipped_top1"] for r in shipped]
            strategies[name]["shipped_gap"] = statistics.fmean(gaps)
            strategies[name]["shipped_gap_max"] = max(gaps)
        series = [r["parameter_free"] for r in runs if r.get("parameter_free")]
        if series:  # a cell search: the share of parameter-free ops in its genotype after each epoch, mean of seeds
            strategies[name]["parameter_free"] = [statistics.fmean(e) for e in zip(*series, strict=False)]
        health = [r["health"] for r in runs if r.get("health")]
        if health:
            strategies[name]["unhealthy_supernets"] = sum(not h["healthy"] for h in health)
    taus = {}
    for sampling in SAMPLINGS:
        values = [held_out_tau(r["inherited"], truth) for r in rows if r["strategy"] == f"{sampling}-supernet"]
        if values:
            taus[sampling] = statistics.fmean(values)
    return strategies, taus


def supernet_budgets(rows: list[dict], price: Price) -> dict[str, float]:
    """Each sampling's supernet training in stand-alone trainings (its seconds over the price), mean over seeds."""
    out = {}
    for sampling in SAMPLINGS:
        seconds = [r["seconds"] for r in rows if r["strategy"] == f"{sampling}-supernet" and "seconds" in r]
        if seconds:
            out[sampling] = statistics.fmean(seconds) / price.seconds
    return out


def many_targets(rows: list[dict], truth: GroundTruth, price: Price) -> dict[str, Any] | None:
    """One supernet, several latency limits: per limit the shipped networks' gap to their stand-alone accuracy
    and whether they fit; the supernet and search's seconds against one stand-alone training per network."""
    runs = [r for r in rows if r["strategy"] == "many-targets"]
    if not runs:
        return None
    limits: dict[float, dict[str, list[float]]] = {}
    for r in runs:
        for e in r["shipped"]:
            arch = truth.archs[groundtruth.key(e["choices"])]
            entry = limits.setdefault(e["limit_ms"], {"gap": [], "fits": [], "true": []})
            entry["gap"].append(arch["mean"] - e["test_top1"])
            entry["fits"].append(float(arch["latency_ms"] <= e["limit_ms"]))
            entry["true"].append(arch["mean"])
    networks = statistics.fmean(len(r["shipped"]) for r in runs)
    return {
        "limits": [
            {
                "limit_ms": limit,
                "shipped_gap": statistics.fmean(v["gap"]),
                "shipped_gap_max": max(v["gap"]),
                "true_top1": statistics.fmean(v["true"]),
                "fits": statistics.fmean(v["fits"]),
            }
            for limit, v in sorted(limits.items())
        ],
        "seconds": statistics.fmean(r["seconds"] for r in runs),
        "standalone_seconds": networks * price.seconds,
        "compute_ratio": statistics.fmean(r["seconds"] for r in runs) / (networks * price.seconds),
    }


def render(
    truth: GroundTruth,
    strategies: dict[str, dict],
    taus: dict[str, float],
    reference: float,
    price: Price,
    budgets: dict[str, float],
    many: dict[str, Any] | None,
) -> str:
    gt = truth.meta
    lines = [
        f"ground truth: {gt['architectures']} architectures x {gt['seeds']} seeds; true accuracy "
        f"{min(a['mean'] for a in truth.archs.values()):.2f}-{max(a['mean'] for a in truth.archs.values()):.2f}%, "
        f"seed noise (std) {gt['seed_noise']:.2f}",
        (
            f"no latency target: best true accuracy {truth.best:.2f}% (of the table's {len(truth.feasible)}), "
            if truth.cell
            else f"latency target {truth.target:.3f} ms: {len(truth.feasible)} architectures fit, best true accuracy "
            f"{truth.best:.2f}%, "
        )
        + f"median {statistics.median(a['mean'] for a in truth.feasible):.2f}%",
        f"random search's price, one stand-alone training: {price.describe()}",
        "",
        f"{'strategy':<20} {'regret':>7} {'random':>7} {'win rate':>8} {'budget use':>10} {'seconds':>8} "
        f"{'random k':>8}  beats random  target (regret <= half random's, wins >= 80%)",
    ]
    for name, s in strategies.items():
        use = "-" if s["budget_use"] is None else f"{s['budget_use']:.2f}"
        lines.append(
            f"{name:<20} {s['regret']:>7.2f} {s['random_regret']:>7.2f} {100 * s['win_rate']:>7.0f}% "
            f"{use:>10} {s['seconds']:>8.1f} {s['random_trainings']:>8.1f}  "
            f"{'yes' if s['beats_random'] else 'no':<13} {'met' if s['meets_target'] else 'missed'}"
        )
    gaps = {k: s for k, s in strategies.items() if "shipped_gap" in s}
    if gaps:
        lines.append("")
        lines.append(
            "shipped (inherited) weights below the same network trained alone (points of test top-1, mean / worst): "
            + ", ".join(f"{k} {s['shipped_gap']:.2f} / {s['shipped_gap_max']:.2f}" for k, s in gaps.items())
        )
    collapse = {k: s["parameter_free"] for k, s in strategies.items() if s.get("parameter_free")}
    if collapse:
        lines.append("")
        lines.append("share of parameter-free ops (none, skip, pools) in the genotype after each epoch, mean of seeds:")
        lines += [f"  {k:<18} " + " ".join(f"{v:.2f}" for v in series) for k, series in collapse.items()]
    if budgets:
        lines.append("")
        lines.append(
            "supernet training, in stand-alone trainings at the price: "
            + ", ".join(f"{k} {v:.1f}" for k, v in budgets.items())
        )
    if many:
        lines.append(
            f"one uniform supernet, one Pareto search, {len(many['limits'])} latency limits: "
            + "; ".join(
                f"{e['limit_ms']:.2f} ms: gap {e['shipped_gap']:.2f} (worst {e['shipped_gap_max']:.2f}), "
                f"fits {100 * e['fits']:.0f}%"
                for e in many["limits"]
            )
            + f"; {many['seconds']:.0f} s in all, {many['compute_ratio']:.2f}x training each network stand-alone"
        )
    if taus:
        lines.append("")
        lines.append(
            "Kendall tau against the mean of all seeds but one (averaged over which): inherited weights of the "
            + ", ".join(f"{k} supernet {v:.2f}" for k, v in taus.items())
            + f"; one stand-alone training per architecture (tau_reference) {reference:.2f}"
        )
    return "\n".join(lines)


def plot(task: Task, truth: GroundTruth, strategies: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    archs = list(truth.archs.values())
    if truth.cell:  # no latency target: where each strategy's picks land among the table's accuracies
        ax.hist([a["mean"] for a in archs], bins=30, color="#bbbbbb", label=f"all {len(archs)}")
        for k, (name, st) in enumerate(strategies.items()):
            ax.axvline(truth.best - st["regret"], lw=1.5, color=f"C{k}", label=f"{name} (mean of its picks)")
        ax.set_xlabel("true top-1, % (stand-alone, mean of seeds)")
        ax.set_ylabel("genotypes")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"picks of each strategy on {task.name} ({task.recipe['data']}, {task.recipe['input']})")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return
    latency, accuracy = [a["latency_ms"] for a in archs], [a["mean"] for a in archs]
    ax.scatter(latency, accuracy, s=10, c="#bbbbbb", label=f"all {len(archs)}")
    ax.axvline(truth.target, color="k", lw=0.8, ls="--", label=f"target {truth.target:.2f} ms")
    best = max(truth.feasible, key=lambda a: a["mean"])
    ax.scatter([best["latency_ms"]], [best["mean"]], s=220, marker="*", facecolors="none", edgecolors="k", label="best")
    markers = "ovs^D<>pPX*hH8d1234"
    for (name, s), marker in zip(strategies.items(), markers, strict=False):
        picked = [truth.archs[groundtruth.key(c)] for c in s["picks"]]
        ax.scatter(
            [a["latency_ms"] for a in picked], [a["mean"] for a in picked], s=40, marker=marker, label=name, alpha=0.8
        )
    ax.set_xlabel("latency, ms (cost table: CPU, 1 thread, batch 64)")
    ax.set_ylabel("true top-1, % (stand-alone, mean of seeds)")
    ax.set_ylim(max(ax.get_ylim()[0], truth.worst - 5), None)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title(f"picks of each strategy on {task.name} ({task.recipe['data']}, {task.recipe['input']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def interleave_prices(searches: list[tuple], task: str, target: float) -> list[tuple]:
    """The searches with a priced stand-alone training queued after every PRICE_EVERY of them (PRICE_MIN at
    least, the rest at the end), so random search's price is timed under the load the strategies ran under."""
    count = max(PRICE_MIN, len(searches) // PRICE_EVERY)
    prices = [(task, "price", "", 1000 + k, target, None, "", {}) for k in range(count)]
    jobs: list[tuple] = []
    for i, job in enumerate(searches):
        jobs.append(job)
        if (i + 1) % PRICE_EVERY == 0 and prices:
            jobs.append(prices.pop(0))
    return jobs + prices


def run_all(args: argparse.Namespace, settings: Settings, task: Task, truth: GroundTruth, extra: dict) -> list[dict]:
    """Every strategy over every seed, plus the stand-alone trainings that price random search, in a pool."""
    wanted = set(args.strategies.split(","))
    with tempfile.TemporaryDirectory(prefix="hwnas-quality-") as tmp:
        runs = []
        if truth.cell:
            runs += [("darts", v) for v in DARTS_VARIANTS]
        else:
            runs += [("oneshot", s) for s in SAMPLINGS if "oneshot" in wanted]
            runs += [("dnas", m) for m in DNAS_MODES if "dnas" in wanted]
        seeds = range(settings.seeds)
        searches = [(task.name, k, v, s, truth.target, settings, tmp, extra.get(k, {})) for k, v in runs for s in seeds]
        jobs = interleave_prices(searches, task.name, truth.target)
        rows: list[dict] = []
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            for i, result in enumerate(pool.imap_unordered(run_job, jobs), 1):
                rows.extend(result)
                log.info("%s: %d/%d jobs done (%.0f s)", task.name, i, len(jobs), time.perf_counter() - start)
    return rows


def task_kind(task: Task) -> str:
    """ "cell" (DARTS, CNAS) or "layerwise", as the task's space declares."""
    from hwnas.spaces import load_space

    return "cell" if load_space(str(task.space)).kind == "cell" else "layerwise"


def test_images(task: Task) -> int:
    """The size of the held-out test pool the ground truth's accuracies are measured on."""
    from hwnas.data import open_dataset

    channels, h, w = (int(v) for v in task.recipe["input"].split("x"))
    return len(open_dataset(task.recipe["data"], (channels, h, w)).test)


def per_task(path: Path | None, task: Task, several: bool) -> Path | None:
    """`path` for one task; with several, the task's name added before the suffix."""
    if path is None or not several:
        return path
    return path.with_name(f"{path.stem}_{task.name}{path.suffix}")


def report(args: argparse.Namespace, settings: Settings, task: Task, extra: dict, several: bool) -> dict | str:
    """Run (or load) and score every strategy on one ground truth: its JSON object, or its table as text."""
    truth = GroundTruth(task.table, args.target, args.quantile, cell=task_kind(task) == "cell")
    load, save = per_task(args.load_rows, task, several), per_task(args.save_rows, task, several)
    if save is not None and save.exists():
        raise SystemExit(f"--save-rows {save}: the file exists; expected a new path (saved rows are never replaced)")
    rows = json.loads(load.read_text()) if load else run_all(args, settings, task, truth, extra)
    if save:
        save.write_text(json.dumps(rows))
    price = price_of(rows, truth)
    strategies, taus = score(rows, truth, price)
    reference = single_run_tau(truth)
    budgets, many = supernet_budgets(rows, price), many_targets(rows, truth, price)
    plot_path = per_task(args.plot, task, several) or Path(tempfile.gettempdir()) / f"search_quality_{task.name}.png"
    plot(task, truth, strategies, plot_path)
    if not args.json:
        text = render(truth, strategies, taus, reference, price, budgets, many)
        return text + f"\n\nplot: {plot_path}"
    meta = truth.meta
    return {
        "task": task.name,
        "kind": task_kind(task),
        "ground_truth": {
            "architectures": meta["architectures"],
            "seeds": meta["seeds"],
            "test_images": test_images(task),
            "seed_noise": meta["seed_noise"],
            "std_over_noise": meta["std_over_noise"],
            "spread_over_noise": meta["spread_over_noise"],
            "target_ms": None if truth.cell else truth.target,
            **({"target_note": "a cell task is searched without a latency target"} if truth.cell else {}),
            "best_under_target": truth.best,
        },
        "price_s": price.seconds,
        "price_basis": price.basis,
        "price_samples": price.samples,
        "price_range_s": [price.low, price.high],
        "strategies": {k: {f: v[f] for f in STRATEGY_FIELDS if f in v} for k, v in strategies.items()},
        "kendall_tau": taus,
        "supernet_trainings": budgets,
        "many_targets": many,
        "tau_reference": reference,
        "tau_note": "every tau is against the mean of all seeds but one, averaged over which; tau_reference: one "
        "stand-alone training per architecture (the seed left out) against it, not an upper bound",
        "plot": str(plot_path),
    }


def strict_json(value: Any) -> str:
    """One line of JSON without NaN or Infinity: a non-finite number is null, with `<key>_note` beside it."""

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            out = {}
            for k, v in item.items():
                out[k] = clean(v)
                if isinstance(v, float) and not math.isfinite(v):
                    out[f"{k}_note"] = f"{v} (not finite)"
            return out
        if isinstance(item, list):
            return [clean(v) for v in item]
        return None if isinstance(item, float) and not math.isfinite(item) else item

    return json.dumps(clean(value), allow_nan=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="all", help=f"a ground truth ({', '.join(groundtruth.tasks())}) or all")
    parser.add_argument("--quick", action="store_true", help="shorter searches (under 15 min a task on 2 cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per task, a line each")
    parser.add_argument("--seeds", type=int, default=None, help="default: 5, or the task's (its task.yaml)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (1 thread each)")
    parser.add_argument("--target", type=float, default=None, help="latency target in ms (default: a quantile)")
    parser.add_argument("--quantile", type=float, default=0.3, help="default target: this quantile of latency")
    parser.add_argument("--strategies", default="dnas,oneshot", help="dnas, oneshot or both (comma-separated)")
    parser.add_argument("--plot", type=Path, default=None, help="write the plot here (default: the temp folder)")
    parser.add_argument("--save-rows", type=Path, default=None, help="write every run's raw result here (JSON)")
    parser.add_argument("--load-rows", type=Path, default=None, help="score a saved run's rows instead of running")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KIND.OPTION=VALUE",
        help="override a search option to compare settings, e.g. dnas.arch_lr=0.05 or oneshot.lr=0.2 (YAML values)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    names = groundtruth.tasks() if args.task == "all" else [args.task]
    if args.task != "all" and args.task not in groundtruth.tasks():
        parser.error(f"--task {args.task!r}: expected one of {', '.join(groundtruth.tasks())} or all")
    extra: dict[str, dict] = {"dnas": {}, "oneshot": {}}
    for item in args.set:
        name, _, value = item.partition("=")
        kind, _, option = name.partition(".")
        if kind not in ("dnas", "oneshot") or not option or not value:
            parser.error(f"--set {item!r}: expected dnas.OPTION=VALUE or oneshot.OPTION=VALUE")
        extra[kind][option] = yaml.safe_load(value)
    for name in names:
        task = groundtruth.load_task(name)
        if not task.table.is_file():
            log.warning("%s: no %s yet (python bench/groundtruth/build.py %s); skipped", name, task.table, name)
            continue
        result = report(args, settings_for(task, args.quick, args.seeds), task, extra, several=len(names) > 1)
        print(strict_json(result) if args.json else result, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
