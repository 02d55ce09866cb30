"""Measure a space's cost table on a device, calibrated on a few whole networks, and cache it.

Every entry (stem, each distinct (layer, candidate) shape, head) is timed in interleaved rounds
(`hwnas.cost.interleaved`) and priced by its fastest block. A sum of entries timed alone misses
what whole networks cost beyond their parts (each layer's input arrives from the previous layer,
not from a warm cache; the calls between modules), which is close to a constant per space. So
`calibration` random networks of the space are timed end to end (in rounds of their own, as
`latency validate` times networks), and the median of (measured - sum of entries) becomes the table's
`offset_ms`, added to every prediction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any, TypedDict, Unpack

import torch
from tqdm import tqdm

from ..arch import Architecture
from ..blocks import families_fingerprint
from ..cache import PACKAGE_DIR, cache_dir
from ..errors import HwnasError
from ..model import build_model
from ..spaces import CellSpaceSpec, SpaceSpec
from ..spaces.genotype import random_genotype
from .cell_cost import CellCostModel
from .interleaved import RoundsPolicy, Timed, time_interleaved
from .latency import check_device, check_dtype, device_name, device_sync, module_runner, pinned_threads
from .table import NOT_MEASURED, CostTable, priced_entries, space_units

logger = logging.getLogger(__name__)

TABLE_ROUNDS = RoundsPolicy(min_rounds=10)
CALIBRATION_SEED = 2**31 - 1  # calibration networks are drawn apart from `latency validate`'s (seed 0 by default)


def random_architecture(space: SpaceSpec | CellSpaceSpec, rng: random.Random) -> Architecture:
    """A uniformly random architecture of the space (a DARTS-style genotype for a cell space)."""
    if space.kind == "cell":
        genotype = random_genotype(space.ops, space.nodes, rng, shared=space.shared_cells)
        return Architecture.from_genotype(space, genotype)
    return Architecture.from_space(space, [rng.choice(layer.candidates) for layer in space.layers])


def entries_sum(table: CostTable, space: SpaceSpec | CellSpaceSpec) -> Callable[[Architecture], float]:
    """What the table's entries add up to (ms, without the table's offset) for an architecture of `space`."""
    if space.kind == "cell":
        cells = CellCostModel.from_table(table, space, "latency")
        return lambda arch: cells.of(arch.genotype) - table.offset_ms
    return lambda arch: table.predict(space, arch.choices) - table.offset_ms


def _blocks_fingerprint() -> str:
    """Hash of the code that builds the priced modules (plugins included): a measured table goes stale when it
    changes."""
    digest = hashlib.sha256()
    sources = [*sorted((PACKAGE_DIR / "blocks").glob("*.py")), *sorted((PACKAGE_DIR / "nets").glob("*.py"))]
    for path in [*sources, PACKAGE_DIR / "model.py", PACKAGE_DIR / "cost" / "interleaved.py"]:
        digest.update(path.read_bytes())
    digest.update(families_fingerprint().encode())  # registered ops and plugins
    return digest.hexdigest()[:12]


class TimingOptions(TypedDict, total=False):
    """The keyword options of `build_table` and `load_or_build` that say how latency is measured (see `Timing`)."""

    device: str
    threads: int
    batch: int
    dtype: str
    calibration: int


@dataclass(frozen=True)
class Timing:
    """How a table's latency is measured: on `device` (cpu, cuda, cuda:N, onnxruntime), `threads` pinned,
    a `batch` of inputs in `dtype`; `calibration` random whole networks fit its offset (0: none)."""

    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    dtype: str = "float32"
    calibration: int = 6

    @classmethod
    def of_table(cls, table: CostTable) -> Timing:
        """How `table` was measured (its calibration aside)."""
        meta = table.meta
        return cls(
            meta.get("device", "cpu"),
            int(meta.get("threads", 1)),
            int(meta.get("batch", 1)),
            meta.get("dtype", "float32"),
        )

    def check(self) -> None:
        """Raise one HwnasError line if this machine cannot measure this way."""
        check_device(self.device)
        check_dtype(self.dtype)
        if self.calibration < 0:
            raise HwnasError(f"calibration {self.calibration}: expected 0 or more networks")

    def table_key(self, space: SpaceSpec | CellSpaceSpec) -> dict[str, Any]:
        """Everything a table of `space` measured this way depends on."""
        key = {
            "space": space.name,
            "space_fingerprint": space.fingerprint(),
            **asdict(self),
            "device_name": device_name(self.device),
            "torch": torch.__version__,
            "blocks": _blocks_fingerprint(),
        }
        if self.device == "onnxruntime":
            key["onnxruntime"] = version("onnxruntime")
        return key

    def runner(self, module: torch.nn.Module, shape: tuple[int, ...]) -> Callable[[], object]:
        """A call of `module` on a batch of `shape` inputs, measured this way."""
        return module_runner(
            module, shape, device=self.device, batch=self.batch, threads=self.threads, dtype=self.dtype
        )

    def time(self, runs: Sequence[Callable[[], object]], policy: RoundsPolicy, bar: tqdm) -> list[Timed]:
        """`runs` timed in interleaved rounds with this many threads pinned, without autograd; `bar` advances
        by one per runnable done."""
        done = bar.n
        with pinned_threads(self.threads), torch.inference_mode():
            return time_interleaved(
                runs,
                policy=policy,
                sync=device_sync(self.device),
                on_round=lambda rounds, active: bar.update(done + len(runs) - active - bar.n),
            )


def build_table(
    space: SpaceSpec | CellSpaceSpec,
    *,
    policy: RoundsPolicy = TABLE_ROUNDS,
    progress: bool = True,
    measure: bool = True,
    **options: Unpack[TimingOptions],
) -> CostTable:
    """Measure every distinct (op, input shape) of `space` as `options` say (`Timing`) and `policy` stops; count
    its MACs and params; fit the offset on `calibration` random networks timed end to end.

    With `measure=False` only MACs and params are counted (latency entries are 0, `meta.measured` false).
    """
    timing = Timing(**options)
    timing.check()
    units = space_units(space)
    modules: dict[str, torch.nn.Module] = {}

    def keep(unit: Any, module: torch.nn.Module, counted: Any) -> dict[str, Any]:
        modules[unit.key] = module
        return dict(NOT_MEASURED)

    entries = priced_entries(units, keep)
    if not measure:
        return CostTable({"space": space.name, "space_fingerprint": space.fingerprint(), "measured": False}, entries)
    rng = random.Random(CALIBRATION_SEED)
    with torch.random.fork_rng(devices=[]):
        networks = [random_architecture(space, rng) for _ in range(timing.calibration)]
        unit_runs = [timing.runner(modules[key], unit.input_shape) for key, unit in units.items()]
        network_runs = [timing.runner(build_model(arch), space.input_size) for arch in networks]
    logger.info(
        f"hwnas: measuring {len(units)} layer/candidate shapes of {space.name} and {len(networks)} whole networks "
        f"on {timing.device} ({device_name(timing.device)}), {timing.threads} thread(s) pinned, batch "
        f"{timing.batch}, {timing.dtype}"
    )
    start = time.time()
    with tqdm(
        total=len(units) + len(networks), disable=None if progress else True, file=sys.stderr, leave=False
    ) as bar:
        # the networks in the entries' rounds: the offset is fitted at the speed the entries were timed at
        timed = timing.time(unit_runs + network_runs, policy, bar)
    seconds = time.time() - start
    measured = [result.fastest_ms for result in timed[len(unit_runs) :]]
    for key, result in zip(units, timed[: len(unit_runs)], strict=True):
        entries[key]["latency_ms"] = result.latency_field()
    meta = {
        **timing.table_key(space),
        "latency_estimate": "min",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(seconds, 1),
        "rounds": max(result.rounds for result in timed),
        "unit": "ms; macs and params per image",
    }
    table = CostTable(meta, entries)
    if networks:
        entries_of = entries_sum(table, space)
        gaps = [ms - entries_of(arch) for arch, ms in zip(networks, measured, strict=True)]
        table.offset_ms = statistics.median(gaps)
        table.meta["calibration_fit"] = {
            "networks": len(networks),
            "measured_ms": measured,
            "gap_ms": gaps,
        }
    return table


def load_or_build(
    space: SpaceSpec | CellSpaceSpec,
    *,
    table: str | None = None,
    progress: bool = True,
    **options: Unpack[TimingOptions],
) -> CostTable:
    """A user's table file (checked to cover the space), else the cached table for exactly these `options`,
    else a new measurement (cached). A corrupt or mismatched cache entry is rebuilt, with a message."""
    if table is not None:
        loaded = CostTable.load(table)
        loaded.check_covers(space, f"cost table {table}")
        return loaded
    timing = Timing(**options)
    key = timing.table_key(space)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / "cost-tables" / f"{space.name}-{timing.device.replace(':', '')}-{digest}.json"
    if path.is_file():
        try:
            cached = CostTable.load(path)
            if {k: cached.meta.get(k) for k in key} != key:
                raise HwnasError(f"cost table {path}: built for other settings")
            cached.check_covers(space, f"cost table {path}")
            return cached
        except HwnasError as exc:
            logger.warning(f"hwnas: {exc}; rebuilding it")
    built = build_table(space, progress=progress, **options)
    built.save(path)
    return built
