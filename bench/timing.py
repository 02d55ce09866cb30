"""What the step benchmarks share: peak resident memory of this process, and the median time of a step."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_time(step: Callable[[], object], steps: int, warmup: int = 2) -> float:
    """Median wall time of `steps` calls of `step` after `warmup` untimed ones (seconds)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
