"""Time many runnables in interleaved rounds, each until its fastest time stops improving.

On a shared or throttled machine the speed changes from second to second, so a module timed in one
block of a fraction of a second is priced at whatever speed the machine had then, and two entries
of a table (or two networks) timed a few seconds apart are not comparable. Here every runnable is
timed a little in each round, the rounds spread each one's samples over the whole measurement, and
its estimate is its fastest block: what the device does when nothing slows it down, which is the
figure that is the same from run to run. A runnable stops being timed once its fastest block has
not improved by more than `tolerance` for `patience` rounds, so cheap and steady entries cost little.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BLOCK_SECONDS = 5e-4  # a timed block lasts at least this long, so the clock's resolution does not matter


@dataclass(frozen=True)
class RoundsPolicy:
    """When interleaved timing stops: per runnable, after `min_rounds` and `min_seconds` and once its fastest
    block improved by less than `tolerance` (relative) over the last `patience` rounds, or after `max_rounds`;
    all after `max_seconds`. `min_seconds` spreads the rounds over time: six 3 ms networks timed for 1 s
    measured 3.3-3.9 ms, the same networks timed among 50 others for 8 s 2.2-2.6 ms."""

    blocks: int = 3
    min_rounds: int = 4
    max_rounds: int = 40
    patience: int = 3
    tolerance: float = 0.01
    min_seconds: float = 4.0
    max_seconds: float = 120.0


# a rough figure, for smoke runs and tests
QUICK_ROUNDS = RoundsPolicy(blocks=1, min_rounds=1, max_rounds=2, patience=1, min_seconds=0.0)


@dataclass(frozen=True)
class Timed:
    """A runnable's timed blocks (ms per call) and the round in which it was last timed."""

    samples: tuple[float, ...]
    rounds: int

    @property
    def fastest_ms(self) -> float:
        return min(self.samples)

    def latency_field(self) -> dict[str, float | int]:
        """A cost table entry's `latency_ms`: the fastest block (the estimate) and the spread of all blocks."""
        return {
            "min": self.fastest_ms,
            "median": statistics.median(self.samples),
            "mean": statistics.fmean(self.samples),
            "std": statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0,
            "count": len(self.samples),
        }


def _calls_per_block(run: Callable[[], object], sync: Callable[[], None]) -> int:
    start = time.perf_counter()
    run()
    sync()
    once = time.perf_counter() - start
    return max(1, min(1000, int(BLOCK_SECONDS / max(once, 1e-9)) + 1))


def _block(run: Callable[[], object], sync: Callable[[], None], calls: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        run()
    sync()
    return (time.perf_counter() - start) * 1e3 / calls


def _settled(history: list[float], policy: RoundsPolicy) -> bool:
    """Whether the fastest block (after each round) stopped improving."""
    if len(history) >= policy.max_rounds:
        return True
    if len(history) < max(policy.min_rounds, policy.patience + 1):
        return False
    before = history[-policy.patience - 1]
    return (before - history[-1]) <= policy.tolerance * before


def time_interleaved(
    runs: Sequence[Callable[[], object]],
    *,
    policy: RoundsPolicy = RoundsPolicy(),
    warmup: int = 3,
    sync: Callable[[], None] = lambda: None,
    on_round: Callable[[int, int], None] | None = None,
) -> list[Timed]:
    """Time every runnable in rounds; in each round each unsettled one runs once untimed (its caches warm
    again after the others ran) and `policy.blocks` timed blocks. `sync` waits for the device (CUDA).
    Python's garbage collector is off meanwhile, as `timeit` does, so its pauses land in no block."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _rounds(runs, policy, warmup, sync, on_round)
    finally:
        if collecting:
            gc.enable()


def _rounds(
    runs: Sequence[Callable[[], object]],
    policy: RoundsPolicy,
    warmup: int,
    sync: Callable[[], None],
    on_round: Callable[[int, int], None] | None,
) -> list[Timed]:
    for run in runs:
        for _ in range(warmup):
            run()
    calls = [_calls_per_block(run, sync) for run in runs]
    samples: list[list[float]] = [[] for _ in runs]
    history: list[list[float]] = [[] for _ in runs]
    active = list(range(len(runs)))
    start = time.perf_counter()
    deadline = start + policy.max_seconds
    rounds = 0
    while active and time.perf_counter() < deadline:
        rounds += 1
        for i in active:
            runs[i]()
            samples[i].extend(_block(runs[i], sync, calls[i]) for _ in range(policy.blocks))
            history[i].append(min(samples[i]))
        if time.perf_counter() - start >= policy.min_seconds:
            active = [i for i in active if not _settled(history[i], policy)]
        if on_round is not None:
            on_round(rounds, len(active))
    return [Timed(tuple(s), len(h)) for s, h in zip(samples, history, strict=True)]
