"""How well a cost table predicts whole networks: random architectures timed end to end against its sums.

The networks are timed as the table's entries were (interleaved rounds, fastest block, on the table's
device and settings) and drawn apart from the networks that calibrated the table's offset, so every
figure is judged on networks nothing was fitted on. Splitting each network's timed blocks into two
halves gives the measurement's own repeatability: the ceiling any predictor is held to on this machine.

A table is priced at the speed the machine had while it was built; a shared or throttled machine runs
minutes later at another. So the table's calibration networks are timed again, in the same rounds as
the networks judged: their times now against their times then are the machine's drift, reported, and
the table's predictions scaled by it are what the table says of this machine at today's speed.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass

from scipy import stats
from tqdm import tqdm

from ..errors import HwnasError
from ..model import build_model
from ..spaces import CellSpaceSpec, SpaceSpec
from .build import CALIBRATION_SEED, Timing, entries_sum, random_architecture
from .bundle import is_bundle_table
from .interleaved import RoundsPolicy
from .models import is_model_table
from .table import CostTable

# the ground truth is timed longer than table entries: spread over 30 s, each network's fastest block repeats
# better (fbnet_small halves: Spearman 0.887 over 8 s)
VALIDATION_ROUNDS = RoundsPolicy(min_rounds=10, min_seconds=30.0)
# beyond this drift (%) of the machine's speed since the table was built, the table's own errors say more about
# the machine than about the table
DRIFT_LIMIT_PCT = 5.0


@dataclass(frozen=True)
class Validation:
    samples: int
    seconds: float
    spearman: float
    kendall: float
    mean_error_pct: float  # the table's predictions (sum of entries + offset)
    max_error_pct: float
    offset_ms: float
    calibration_networks: int
    mean_error_pct_without_offset: float
    max_error_pct_without_offset: float
    repeatability_spearman: float  # one half of each network's timed blocks against the other half
    repeatability_pct: float  # mean |difference| of the two halves' fastest blocks
    measured_ms: list[float]
    predicted_ms: list[float]
    # the calibration networks now against when the table was built (None: the table has none)
    speed_ratio: float | None = None
    drift_pct: float | None = None
    mean_error_pct_at_speed: float | None = None  # the predictions times `speed_ratio`
    max_error_pct_at_speed: float | None = None

    @property
    def drifted(self) -> bool:
        """Whether the machine's speed moved more than DRIFT_LIMIT_PCT since the table was built."""
        return self.drift_pct is not None and abs(self.drift_pct) > DRIFT_LIMIT_PCT

    def to_dict(self) -> dict:
        return {**asdict(self), "drifted": self.drifted}


def _errors(predicted: list[float], measured: list[float]) -> list[float]:
    return [abs(p - m) / m * 100 for p, m in zip(predicted, measured, strict=True)]


def _halves(samples: tuple[float, ...]) -> tuple[float, float]:
    return min(samples[0::2]), min(samples[1::2] or samples)


def validate_table(
    space: SpaceSpec | CellSpaceSpec,
    table: CostTable,
    samples: int = 50,
    seed: int = 0,
    policy: RoundsPolicy = VALIDATION_ROUNDS,
    progress: bool = True,
) -> Validation:
    """Time `samples` uniformly random architectures on the table's device and settings; compare them with the
    table's predictions."""
    meta = table.meta
    if is_model_table(table):
        raise HwnasError(
            f"cost table {table.path or ''}: its latency comes from a latency model ({meta['device']}), not from "
            f"a device; expected a table measured on cpu, cuda or onnxruntime to validate against measurements"
        )
    if is_bundle_table(table):
        raise HwnasError(
            f"cost table {table.path or ''}: it was timed on another device ({meta.get('device_name')}) by a "
            f"bundle, and validate measures whole networks on this machine; expected a table measured here "
            f"(cpu, cuda or onnxruntime)"
        )
    rng = random.Random(seed)
    timing = Timing.of_table(table)
    networks = [random_architecture(space, rng) for _ in range(samples)]
    # a table built for another space that covers this one was calibrated on that space's networks
    then = _calibration_times(table) if meta.get("space_fingerprint") == space.fingerprint() else []
    calibration_rng = random.Random(CALIBRATION_SEED)
    again = [random_architecture(space, calibration_rng) for _ in then]
    entries_of = entries_sum(table, space)
    sums = [entries_of(arch) for arch in networks]
    runs = [timing.runner(build_model(arch), space.input_size) for arch in networks + again]
    start = time.time()
    with tqdm(total=len(runs), disable=None if progress else True, file=sys.stderr, leave=False, unit="net") as bar:
        everything = timing.time(runs, policy, bar)
    seconds = time.time() - start
    timed, now = everything[:samples], [t.fastest_ms for t in everything[samples:]]
    measured = [t.fastest_ms for t in timed]
    predicted = [s + table.offset_ms for s in sums]
    errors, raw = _errors(predicted, measured), _errors(sums, measured)
    first, second = zip(*(_halves(t.samples) for t in timed), strict=True)
    drift: dict[str, float] = {}
    if then:
        ratio = statistics.median(a / b for a, b in zip(now, then, strict=True))
        at_speed = _errors([p * ratio for p in predicted], measured)
        drift = {
            "speed_ratio": ratio,
            "drift_pct": (ratio - 1) * 100,
            "mean_error_pct_at_speed": statistics.fmean(at_speed),
            "max_error_pct_at_speed": max(at_speed),
        }
    return Validation(
        samples,
        round(seconds, 1),
        float(stats.spearmanr(predicted, measured).statistic),
        float(stats.kendalltau(predicted, measured).statistic),
        statistics.fmean(errors),
        max(errors),
        table.offset_ms,
        len(then),
        statistics.fmean(raw),
        max(raw),
        float(stats.spearmanr(first, second).statistic),
        statistics.fmean(_errors(list(first), list(second))),
        measured,
        predicted,
        **drift,
    )


def _calibration_times(table: CostTable) -> list[float]:
    """The whole-network times (ms) the table's offset was fitted on, when it was built."""
    fit = table.meta.get("calibration_fit", {})
    times = fit.get("measured_ms", []) if isinstance(fit, dict) else []
    if not isinstance(times, list) or not all(isinstance(t, int | float) and t > 0 for t in times):
        raise HwnasError(
            f"cost table {table.path or ''}: calibration_fit.measured_ms is not a list of positive times; "
            f"expected the table as `hwnas latency` writes it"
        )
    return [float(t) for t in times]
