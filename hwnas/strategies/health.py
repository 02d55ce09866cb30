"""Health checks that catch a search about to pick at random: a one-shot supernet whose paths score near
chance (SPOS, FairNAS), DNAS/DARTS architecture parameters (θ, α) that never moved, or a DARTS α that moved but
left every edge's mixture uniform.

Supernet rule: n random paths, drawn uniformly from the whole space (every search's population before its
limits filter it) with a fixed seed, are evaluated with inherited weights; the supernet is healthy when their
mean val top-1 is at least chance + max(5, 0.1 · (100 − chance)) percentage points, chance = 100 / classes
(10 classes: 19%; 100 classes: 10.9%; 2 classes: 55%). The verdict is a property of the supernet: the same for
every budget searched. An untrained supernet scores about chance; a usefully trained one's random paths score
far above it. The mean of the paths that fit each limit is reported beside the verdict, as information.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

MIN_MARGIN = 5.0  # percentage points above chance, at least
MARGIN_SHARE = 0.1  # of the distance from chance to 100%
THETA_TOLERANCE = 1e-6
UNIFORM_MARGIN = 0.01  # α is still uniform while no op's weight on any edge is 1% above 1/ops


def healthy_top1(num_classes: int) -> float:
    """The lowest mean val top-1 (%) of random paths that counts as a healthy supernet."""
    chance = 100.0 / num_classes
    return chance + max(MIN_MARGIN, MARGIN_SHARE * (100.0 - chance))


def supernet_health(
    evaluate: Callable[[list[int]], float], draw: Callable[[], list[int]], num_classes: int, paths: int = 8
) -> dict[str, Any]:
    """Val top-1 of `paths` random paths against chance; JSON-able, with a verdict and a message."""
    if paths < 1:
        raise ValueError(f"paths must be >= 1, got {paths}")
    scores = [float(evaluate(draw())) for _ in range(paths)]
    mean, best = sum(scores) / len(scores), max(scores)
    chance, needed = 100.0 / num_classes, healthy_top1(num_classes)
    healthy = mean >= needed
    return {
        "paths": paths,
        "mean_top1": mean,
        "max_top1": best,
        "chance_top1": chance,
        "healthy": healthy,
        "message": _supernet_message(paths, mean, best, chance, needed, healthy),
    }


def within_limits_health(
    scored: Sequence[tuple[list[int], float]],
    limits: Sequence[tuple[str, dict[str, float], Callable[[list[int]], bool]]],
) -> tuple[list[dict[str, Any]], str]:
    """Per limit (its flags, its values, its test), the mean val top-1 of the scored paths that fit it, and a
    sentence saying so: information beside the verdict, which it does not change."""
    entries, parts = [], []
    for label, limit, fits in limits:
        inside = [score for path, score in scored if fits(path)]
        mean = sum(inside) / len(inside) if inside else None
        entries.append({"limit": limit, "paths_within": len(inside), "mean_top1": mean})
        parts.append(
            f"{label}: {len(inside)} of them fit, averaging {mean:.2f}%"
            if mean is not None
            else f"{label}: none of the {len(scored)} fits"
        )
    return entries, (f" Within the limits (information, not the verdict): {'; '.join(parts)}." if parts else "")


def _supernet_message(paths: int, mean: float, best: float, chance: float, needed: float, healthy: bool) -> str:
    seen = f"{paths} random paths of the supernet average {mean:.2f}% val top-1 (best {best:.2f}%)"
    if healthy:
        return f"supernet health: {seen}, chance is {chance:.2f}%: healthy (>= {needed:.2f}%)"
    return (
        f"supernet health: {seen}, close to chance ({chance:.2f}%; a healthy supernet reaches {needed:.2f}%). "
        f"Its inherited accuracies do not rank architectures, so the search will pick at random. "
        f"Train the supernet longer (more --epochs of `hwnas supernet train`), raise --lr, and check the "
        f"val top-1 that `hwnas supernet train` reports before searching."
    )


def theta_health(initial: Sequence[Tensor], final: Sequence[Tensor], updates: int) -> dict[str, Any]:
    """How far DNAS/DARTS architecture parameters moved from their start; unhealthy when they never did."""
    moves = (float((b.detach() - a.detach()).abs().max()) for a, b in zip(initial, final, strict=True) if a.numel())
    change = max(moves, default=0.0)
    healthy = updates > 0 and change >= THETA_TOLERANCE
    return {
        "updates": updates,
        "max_change": change,
        "healthy": healthy,
        "message": _theta_message(updates, change, healthy),
    }


def alpha_health(
    initial: Sequence[Tensor], final: Sequence[Tensor], updates: int, probs: Sequence[Tensor]
) -> dict[str, Any]:
    """`theta_health`, and unhealthy as well when α moved but its mixture stayed uniform: on no edge does any
    op's share of `probs` ([edges x ops] softmax rows) reach (1 + `UNIFORM_MARGIN`) / ops, so the genotype is
    decided by noise-sized differences. Reports the mean entropy of the rows against ln(ops)."""
    health = theta_health(initial, final, updates)
    rows = torch.cat([p.detach().reshape(-1, p.shape[-1]) for p in probs])
    ops = rows.shape[-1]
    lead = float(rows.max(-1).values.max()) * ops - 1  # the strongest op's share over uniform, on the most decided edge
    entropy = float(-(rows * rows.clamp_min(1e-12).log()).sum(-1).mean())
    health.update(entropy=entropy, uniform_entropy=math.log(ops), lead=lead)
    if health["healthy"] and lead < UNIFORM_MARGIN:
        health["healthy"] = False
        health["message"] = (
            f"architecture parameters α stayed uniform: in {updates} updates no op's weight on any edge rose more "
            f"than {lead:.2%} above the uniform 1/{ops} (mean entropy {entropy:.4f} nats of ln {ops} = "
            f"{math.log(ops):.4f}), so the genotype is decided by noise, not searched. Search more epochs, raise "
            f"--arch-lr, or give α's split more data (--train-portion)."
        )
    return health


def _theta_message(updates: int, change: float, healthy: bool) -> str:
    if healthy:
        return f"architecture parameters: {updates} updates, largest change {change:.3g}: healthy"
    why = "were never updated" if updates == 0 else f"did not move in {updates} updates (largest change {change:.1e})"
    return (
        f"architecture parameters (θ, α) {why}: the result is their initial argmax, the first candidate of every "
        f"layer, not a searched architecture. Give θ's split more data (--train-portion, a larger dataset), run "
        f"more epochs than the weight warm-up (--weight-warmup-epochs), or raise the architecture learning rate."
    )
