"""How well a cost table predicts whole networks: random architectures timed end to end against its sums.

The networks are timed as the table's entries were (interleaved rounds, fastest block, on the table's
device and settings) and drawn apart from the networks that calibrated the table's offset, so every
figure is judged on networks nothing was fitted on. Splitting each network's timed blocks into two
halves gives the measurement's own repeatability: the ceiling any predictor is held to on this machine.
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
from .build import Timing, entries_sum, random_architecture
from .bundle import is_bundle_table
from .interleaved import RoundsPolicy
from .models import is_model_table
from .table import CostTable

# the ground truth is timed longer than table entries: spread over 30 s, each network's fastest block repeats
# better (fbnet_small halves: Spearman 0.887 over 8 s)
VALIDATION_ROUNDS = RoundsPolicy(min_rounds=10, min_seconds=30.0)


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

    def to_dict(self) -> dict:
        return asdict(self)


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
    entries_of = entries_sum(table, space)
    sums = [entries_of(arch) for arch in networks]
    runs = [timing.runner(build_model(arch), space.input_size) for arch in networks]
    start = time.time()
    with tqdm(total=samples, disable=None if progress else True, file=sys.stderr, leave=False, unit="net") as bar:
        timed = timing.time(runs, policy, bar)
    seconds = time.time() - start
    measured = [t.fastest_ms for t in timed]
    predicted = [s + table.offset_ms for s in sums]
    errors, raw = _errors(predicted, measured), _errors(sums, measured)
    first, second = zip(*(_halves(t.samples) for t in timed), strict=True)
    calibration = int(meta.get("calibration_fit", {}).get("networks", 0))
    return Validation(
        samples,
        round(seconds, 1),
        float(stats.spearmanr(predicted, measured).statistic),
        float(stats.kendalltau(predicted, measured).statistic),
        statistics.fmean(errors),
        max(errors),
        table.offset_ms,
        calibration,
        statistics.fmean(raw),
        max(raw),
        float(stats.spearmanr(first, second).statistic),
        statistics.fmean(_errors(list(first), list(second))),
        measured,
        predicted,
    )
