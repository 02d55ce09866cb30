"""The most probable architecture within a cost budget: a knapsack over layers, solved exactly on a cost grid.

The argmax of θ takes each layer's mode on its own, so its cost can land anywhere relative to a target,
even when θ's expected cost sits on it. Maximising Σ_l log p_l(op_l) subject to the architecture's cost
staying within the target is the per-layer argmax whenever that fits, and otherwise the most probable
architecture that does. Costs are rounded to a grid of `bins` steps between the fixed cost and the limit;
a result whose exact cost exceeds the limit (by rounding) is solved again on a slightly lower grid, so
what comes back always fits. A `floor` keeps the result from costing less than that, where any
architecture within the limit can (DNAS passes a share of θ's expected cost: the network it derives
costs what the distribution it trained costs, not what the cheap modes of single layers add up to).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def most_probable_within(
    log_probs: Sequence[Sequence[float]],
    costs: Sequence[Sequence[float]],
    fixed: float,
    limit: float,
    bins: int = 2000,
    floor: float | None = None,
) -> list[int] | None:
    """Candidate indices maximising Σ log_probs within `fixed + Σ costs <= limit` (and, where any
    architecture can, `>= floor`); None when nothing fits."""
    room = limit - fixed
    for _ in range(8):
        if room < 0:
            return None
        low = 0 if floor is None or room <= 0 else max(0, min(bins, int((floor - fixed) / room * bins)))
        path = _solve(log_probs, costs, room, bins, low)
        if path is None:
            return None
        spent = sum(row[i] for row, i in zip(costs, path, strict=True))
        if fixed + spent <= limit:
            return path
        room -= (fixed + spent - limit) + room / bins
    return None


def _solve(log_probs: Sequence[Sequence[float]], costs: Sequence[Sequence[float]], room: float, bins: int, low: int):
    unit = room / bins if room > 0 else 1.0
    steps = [[max(0, round(c / unit)) for c in row] for row in costs]
    best = np.full(bins + 1, -np.inf)  # best[b]: highest score of the layers so far using exactly b steps
    best[0] = 0.0
    picks: list[np.ndarray] = []
    for row_lp, row_steps in zip(log_probs, steps, strict=True):
        new = np.full(bins + 1, -np.inf)
        choice = np.full(bins + 1, -1, dtype=np.int64)
        for i, (lp, s) in enumerate(zip(row_lp, row_steps, strict=True)):
            if s > bins:
                continue
            shifted = np.full(bins + 1, -np.inf)
            shifted[s:] = best[: bins + 1 - s] + lp
            better = shifted > new
            new[better], choice[better] = shifted[better], i
        best = new
        picks.append(choice)
    reachable = np.isfinite(best)
    if not reachable.any():
        return None
    if low and reachable[low:].any():  # the floor, where some architecture reaches it
        best[:low] = -np.inf
    b = int(np.argmax(best))
    path = []
    for layer in range(len(picks) - 1, -1, -1):
        i = int(picks[layer][b])
        path.append(i)
        b -= steps[layer][i]
    return path[::-1]
