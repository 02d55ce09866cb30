"""Path samplers for single-path one-shot supernets: uniform (SPOS) and strictly fair (FairNAS).

Both draw from a generator seeded by the step, so every DDP rank and every resumed run trains
the same paths. A path above a hard limit (MACs, params, latency from the cost table) is drawn again, as
SPOS does with FLOPs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from ..errors import HwnasError

PathIndices = list[int]
MAX_TRIES = 1000


def uniform_path(counts: Sequence[int], rng: random.Random) -> PathIndices:
    """One candidate index per layer, each uniformly among that layer's candidates."""
    return [rng.randrange(n) for n in counts]


def fair_paths(counts: Sequence[int], rng: random.Random) -> list[PathIndices]:
    """m = max(counts) paths such that every layer with m candidates uses each exactly once (FairNAS).

    A layer with fewer candidates uses each of them once and fills the remaining slots uniformly.
    """
    m = max(counts)
    columns = []
    for n in counts:
        order = list(range(n)) + [rng.randrange(n) for _ in range(m - n)]
        rng.shuffle(order)
        columns.append(order)
    return [[column[k] for column in columns] for k in range(m)]


def within_limits(draw: Callable[[], PathIndices], fits: Callable[[PathIndices], bool]) -> PathIndices:
    for _ in range(MAX_TRIES):
        path = draw()
        if fits(path):
            return path
    raise HwnasError(f"no path within the limits in {MAX_TRIES} draws; loosen --max-macs/--max-params/--max-latency")
