"""The one-shot search rules (random, evolution, pareto) on a tabular landscape with a known optimum, no training.

8 layers × 4 choices (65,536 architectures): accuracy is additive per-layer contributions (larger choices
contribute more on average) plus interactions of neighbouring layers plus fixed pseudo-noise; each choice
has a cost, and the limit admits the cheapest 30% of the space, which excludes the unconstrained optimum.
The best architecture within the limit is found by enumeration.
"""

import itertools
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest

from hwnas.engine.distributed import Dist
from hwnas.strategies.config import EvolutionConfig
from hwnas.strategies.evolution import SearchRules
from hwnas.strategies.registry import strategy

LAYERS, CHOICES = 8, 4
SEEDS = range(24)
# SPOS's rules with the CLI defaults scaled down
EVOLUTION = {"population": 20, "generation_num": 10, "parent_num": 5, "mutation_num": 10, "crossover_num": 10}


@dataclass
class Landscape:
    accuracy: Callable[[tuple[int, ...]], float]
    cost: Callable[[tuple[int, ...]], float]
    limit: float
    best: float  # the highest accuracy within the limit
    worst: float  # the lowest accuracy within the limit
    best_anywhere: float
    front: list[tuple[float, float]]  # the true (accuracy, cost) Pareto front within the limit


def build_landscape(seed: int = 0) -> Landscape:
    rng = random.Random(seed)
    unary = [[0.8 * i + rng.uniform(0, 2) for i in range(CHOICES)] for _ in range(LAYERS)]
    pairs = [[[rng.uniform(-1, 1) for _ in range(CHOICES)] for _ in range(CHOICES)] for _ in range(LAYERS - 1)]
    prices = [[i + 1 + rng.uniform(0, 0.5) for i in range(CHOICES)] for _ in range(LAYERS)]
    noise = [rng.uniform(-0.25, 0.25) for _ in range(CHOICES**LAYERS)]

    def accuracy(path: tuple[int, ...]) -> float:
        index = sum(i * CHOICES**k for k, i in enumerate(path))
        return (
            60
            + sum(unary[k][i] for k, i in enumerate(path))
            + sum(w[path[k]][path[k + 1]] for k, w in enumerate(pairs))
            + noise[index]
        )

    def cost(path: tuple[int, ...]) -> float:
        return sum(prices[k][i] for k, i in enumerate(path))

    scored = [(accuracy(p), cost(p)) for p in itertools.product(range(CHOICES), repeat=LAYERS)]
    limit = sorted(c for _, c in scored)[int(0.3 * len(scored))]
    feasible = [(a, c) for a, c in scored if c <= limit]
    return Landscape(accuracy, cost, limit, max(feasible)[0], min(feasible)[0], max(scored)[0], staircase(feasible))


def staircase(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (accuracy, cost) points no other point beats in both, cheapest first."""
    front: list[tuple[float, float]] = []
    for acc, cost in sorted(points, key=lambda p: (p[1], -p[0])):
        if not front or acc > front[-1][0]:
            front.append((acc, cost))
    return front


def hypervolume(front: Sequence[tuple[float, float]], worst: float, limit: float) -> float:
    """Area dominated by a staircase front, from accuracy `worst` up and from cost `limit` down."""
    edges = [c for _, c in front[1:]] + [limit]
    return sum((acc - worst) * (edge - cost) for (acc, cost), edge in zip(front, edges, strict=True))


class TableEvaluator:
    """Looks accuracies up instead of measuring them; the interface of PathEvaluator."""

    def __init__(self, accuracy: Callable[[tuple[int, ...]], float]) -> None:
        self.accuracy = accuracy
        self.cache: dict[tuple[int, ...], float] = {}

    def evaluate(self, paths: Sequence[Sequence[int]], ctx: Dist) -> list[tuple[tuple[int, ...], float]]:
        todo = [p for p in dict.fromkeys(tuple(p) for p in paths) if p not in self.cache]
        new = [(p, self.accuracy(p)) for p in todo]
        self.cache.update(new)
        return new


class TableBudget:
    """The limit on the landscape's cost, reported as MACs; the interface of Constraints."""

    def __init__(self, landscape: Landscape) -> None:
        self.landscape = landscape

    def fits(self, path: Sequence[int]) -> bool:
        return self.landscape.cost(tuple(path)) <= self.landscape.limit

    def cost(self, path: Sequence[int]) -> dict[str, float]:
        return {"macs": self.landscape.cost(tuple(path))}


def searched(landscape: Landscape, **options) -> dict[tuple[int, ...], float]:
    """Every (path, accuracy) a search evaluated on the landscape."""
    evaluator = TableEvaluator(landscape.accuracy)
    cfg = strategy(options["strategy"]).options(progress=False, **options)
    SearchRules(cfg, [CHOICES] * LAYERS, TableBudget(landscape), evaluator).run()
    assert all(landscape.cost(p) <= landscape.limit for p in evaluator.cache)
    return evaluator.cache


@pytest.fixture(scope="module")
def landscape() -> Landscape:
    land = build_landscape()
    assert land.best_anywhere > land.best  # the limit excludes the unconstrained optimum
    return land


def test_evolution_beats_random_search_at_equal_evaluations(landscape, capsys):
    regrets: dict[str, list[float]] = {"evolution": [], "random": []}
    for seed in SEEDS:
        evo = searched(landscape, strategy="evolution", seed=seed, **EVOLUTION)
        assert len(evo) == EVOLUTION["population"] * EVOLUTION["generation_num"]  # no slot spent on a repeat
        rnd = searched(landscape, strategy="random", seed=seed, random_iteration=len(evo))
        assert len(rnd) == len(evo)
        regrets["evolution"].append(landscape.best - max(evo.values()))
        regrets["random"].append(landscape.best - max(rnd.values()))
    evo_mean, rnd_mean = (statistics.mean(regrets[k]) for k in ("evolution", "random"))
    wins = sum(e < r for e, r in zip(regrets["evolution"], regrets["random"], strict=True))
    with capsys.disabled():
        print(
            f"\n[landscape, {len(SEEDS)} seeds, {len(evo)} evaluations each] mean regret: evolution {evo_mean:.3f}, "
            f"random {rnd_mean:.3f}; evolution strictly better in {wins}/{len(SEEDS)}"
        )
    assert evo_mean < 0.6 * rnd_mean
    assert wins >= 0.7 * len(SEEDS)


def test_children_are_never_repeats(landscape):
    """Mutation at 0.1 per layer returns the parent itself about half the time: such children are drawn again (SPOS)."""
    evaluator = TableEvaluator(landscape.accuracy)
    rules = SearchRules(EvolutionConfig(seed=0, **EVOLUTION), [CHOICES] * LAYERS, TableBudget(landscape), evaluator)
    rules.evaluate(rules.distinct(EVOLUTION["population"], rules.uniform, set()))
    parents = [list(p) for p in rules.ranked()[: EVOLUTION["parent_num"]]]
    children = rules.offspring(parents)
    assert len(children) == EVOLUTION["population"]
    assert len({tuple(c) for c in children} | set(evaluator.cache)) == 2 * EVOLUTION["population"]


def test_pareto_search_covers_the_front_better_than_random(landscape, capsys):
    volumes: dict[str, list[float]] = {"pareto": [], "random": []}
    for seed in SEEDS[:10]:
        par = searched(landscape, strategy="pareto", pareto_cost="macs", seed=seed, **EVOLUTION)
        rnd = searched(landscape, strategy="random", seed=seed, random_iteration=len(par))
        for name, found in (("pareto", par), ("random", rnd)):
            front = staircase([(acc, landscape.cost(p)) for p, acc in found.items()])
            volumes[name].append(hypervolume(front, landscape.worst, landscape.limit))
    best = hypervolume(landscape.front, landscape.worst, landscape.limit)
    par_mean, rnd_mean = (statistics.mean(volumes[k]) / best for k in ("pareto", "random"))
    with capsys.disabled():
        print(f"\n[landscape, pareto] hypervolume / the true front's: pareto {par_mean:.3f}, random {rnd_mean:.3f}")
    assert par_mean > rnd_mean + 0.03
