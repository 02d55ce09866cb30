"""How well a cost table predicts whole networks: random architectures measured end to end."""

from __future__ import annotations

import random
import statistics
import sys
from dataclasses import asdict, dataclass

from scipy import stats
from tqdm import tqdm

from ..arch import Architecture
from ..errors import HwnasError
from ..model import build_model
from ..spaces import CellSpaceSpec, Genotype, SpaceSpec
from .bundle import is_bundle_table
from .cells import CellCostModel
from .latency import measure_latency
from .models import is_model_table
from .table import CostTable


@dataclass(frozen=True)
class Validation:
    samples: int
    mean_error_pct: float
    max_error_pct: float
    spearman: float
    kendall: float
    offset_ms: float
    mean_error_pct_with_offset: float
    max_error_pct_with_offset: float
    measured_ms: list[float]
    predicted_ms: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def _errors(predicted: list[float], measured: list[float]) -> list[float]:
    return [abs(p - m) / m * 100 for p, m in zip(predicted, measured, strict=True)]


def random_genotype(space: CellSpaceSpec, rng: random.Random) -> Genotype:
    """A genotype as DARTS derives them: two distinct inputs per node, ops other than `none`."""
    ops = [op for op in space.ops if op != "none"]
    cells = []
    for _ in range(2):
        cells.append(tuple((rng.choice(ops), j) for node in range(space.nodes) for j in rng.sample(range(node + 2), 2)))
    concat = tuple(range(2, space.nodes + 2))
    return Genotype(cells[0], concat, cells[1], concat)


def _random_network(
    space: SpaceSpec | CellSpaceSpec, table: CostTable, rng: random.Random
) -> tuple[Architecture, float]:
    """A uniformly random architecture of the space and the table's prediction for it (without the offset)."""
    if space.kind == "cell":
        genotype = random_genotype(space, rng)
        return Architecture.from_genotype(space, genotype), CellCostModel.from_table(table, space, "latency").of(
            genotype
        ) - table.offset_ms
    choices = [rng.choice(layer.candidates) for layer in space.layers]
    return Architecture.from_space(space, choices), table.predict(space, choices) - table.offset_ms


def validate_table(
    space: SpaceSpec | CellSpaceSpec,
    table: CostTable,
    samples: int = 50,
    seed: int = 0,
    min_run_time: float = 0.5,
    progress: bool = True,
) -> Validation:
    """Measure `samples` uniformly random architectures on the table's device and settings, compare with
    the table's sums. The per-model offset (stem/head/framework overhead the per-layer sums miss) is fitted
    on the even-numbered samples and judged on the odd ones, so its error is not measured on its own fit."""
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
    device, threads, batch = meta.get("device", "cpu"), int(meta.get("threads", 1)), int(meta.get("batch", 1))
    measured, predicted = [], []
    for _ in tqdm(range(samples), disable=None if progress else True, file=sys.stderr, leave=False):
        arch, prediction = _random_network(space, table, rng)
        model = build_model(arch)
        lat = measure_latency(
            model,
            space.input_size,
            device=device,
            batch=batch,
            threads=threads,
            dtype=meta.get("dtype", "float32"),
            min_run_time=min_run_time,
        )
        measured.append(lat.median_ms)
        predicted.append(prediction)
    errors = _errors(predicted, measured)
    fit = [m - p for m, p in zip(measured[0::2], predicted[0::2], strict=True)]
    offset = statistics.median(fit) if fit else 0.0
    held_out = _errors([p + offset for p in predicted[1::2]], measured[1::2]) or [float("nan")]
    return Validation(
        samples,
        statistics.fmean(errors),
        max(errors),
        float(stats.spearmanr(predicted, measured).statistic),
        float(stats.kendalltau(predicted, measured).statistic),
        offset,
        statistics.fmean(held_out),
        max(held_out),
        measured,
        predicted,
    )
