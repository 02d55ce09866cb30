"""The most probable architecture within a budget (hwnas.strategies.knapsack) against brute force."""

import itertools
import math
import random

from hwnas.strategies.knapsack import most_probable_within


def brute_force(log_probs, costs, fixed, limit):
    best, best_score = None, -math.inf
    for path in itertools.product(*(range(len(row)) for row in costs)):
        cost = fixed + sum(row[i] for row, i in zip(costs, path, strict=True))
        score = sum(row[i] for row, i in zip(log_probs, path, strict=True))
        if cost <= limit and score > best_score:
            best, best_score = list(path), score
    return best, best_score


def test_matches_brute_force_on_random_instances():
    rng = random.Random(0)
    for _ in range(60):
        layers, k = rng.randint(1, 5), rng.randint(2, 4)
        costs = [[rng.uniform(0, 3) for _ in range(k)] for _ in range(layers)]
        log_probs = [[math.log(rng.uniform(0.01, 1)) for _ in range(k)] for _ in range(layers)]
        fixed = rng.uniform(0, 1)
        limit = fixed + rng.uniform(0, 3 * layers)
        expected, score = brute_force(log_probs, costs, fixed, limit)
        got = most_probable_within(log_probs, costs, fixed, limit, bins=20000)
        if expected is None:
            assert got is None
            continue
        assert got is not None
        assert fixed + sum(row[i] for row, i in zip(costs, got, strict=True)) <= limit
        assert math.isclose(sum(row[i] for row, i in zip(log_probs, got, strict=True)), score, abs_tol=1e-3)


def test_is_the_argmax_when_it_fits_and_none_when_nothing_fits():
    log_probs = [[-0.1, -3.0], [-2.0, -0.2]]
    costs = [[5.0, 1.0], [1.0, 5.0]]
    assert most_probable_within(log_probs, costs, 0.0, 10.0) == [0, 1]
    assert most_probable_within(log_probs, costs, 0.0, 6.0) in ([0, 0], [1, 1])
    assert most_probable_within(log_probs, costs, 0.0, 2.0) == [1, 0]
    assert most_probable_within(log_probs, costs, 0.0, 1.5) is None


def test_a_floor_keeps_the_result_from_costing_less_where_it_can():
    log_probs = [[-0.1, -2.5], [-0.1, -2.5]]  # the cheap op is the mode of both layers
    costs = [[0.0, 4.0], [0.0, 4.0]]
    assert most_probable_within(log_probs, costs, 1.0, 10.0) == [0, 0]
    assert most_probable_within(log_probs, costs, 1.0, 10.0, floor=4.0) in ([0, 1], [1, 0])
    assert most_probable_within(log_probs, costs, 1.0, 10.0, floor=8.5) == [1, 1]
    assert most_probable_within(log_probs, costs, 1.0, 6.0, floor=8.5) == [0, 0]  # a floor nothing reaches: ignored
