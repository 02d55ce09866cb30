"""`CostTable`: MACs, params and measured latency of every (layer, candidate) of a space.

The file is JSON, one entry per distinct layer shape and op, keyed by a self-describing
string such as `ir_k3_e6-input:16x56x56-output:24-stride:2-act:relu-e1:keep`, with the
latency's median, mean, spread and number of timed runs:

    {"format": "hwnas.costtable/1",
     "meta": {"space": "fbnet", "device": "cpu", "device_name": "...", "threads": 1, ...},
     "offset_ms": 0.0,
     "entries": {"ir_k3_e6-input:...": {"latency_ms": {"median": 0.26, "mean": 0.26, "std": 0.003,
                                        "count": 800}, "macs": 1234, "params": 567}, ...}}

`stem-...` and `head-...` entries price the fixed parts, so a table predicts whole networks.
Tables are cached (see `load_or_build`) under a key of everything they depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypedDict, Unpack

import torch
from torch import nn
from tqdm import tqdm

from ..blocks import families_fingerprint
from ..cache import PACKAGE_DIR, cache_dir
from ..errors import HwnasError
from ..io import atomic_write_text, json_text
from ..spaces import CellSpaceSpec, SpaceSpec
from .cell_units import cell_units
from .counting import ModelProfile, count
from .latency import DTYPES, check_device, device_name, measure_latency
from .metrics import METRICS
from .units import Unit, Units, head_key, layer_keys, layer_units, stem_key

FORMAT = "hwnas.costtable/1"
NOT_MEASURED = {"median": 0.0, "mean": 0.0, "std": 0.0, "count": 0}

logger = logging.getLogger(__name__)


def space_units(space: SpaceSpec | CellSpaceSpec) -> Units:
    """Every distinct priced unit of `space` under its table key: what `build_table` measures."""
    return cell_units(space) if space.kind == "cell" else layer_units(space)


@dataclass
class CostTable:
    meta: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    offset_ms: float = 0.0
    path: Path | None = field(default=None, compare=False)

    def value(self, key: str, metric: str) -> float:
        entry = self.entries[key]
        return float(entry["latency_ms"]["median"]) if metric == "latency" else float(entry[metric])

    def check_covers(self, space: SpaceSpec | CellSpaceSpec, where: str) -> None:
        keys = list(space_units(space))
        missing = [k for k in keys if k not in self.entries]
        if missing:
            raise HwnasError(
                f"{where}: no entry for {missing[0]!r} ({len(missing)} of the space's {len(keys)} "
                f"entries missing); expected a table built for space {space.name} with these knobs"
            )

    def matrix(self, space: SpaceSpec, metric: str = "latency") -> tuple[float, list[list[float]]]:
        """(cost of stem + head [+ offset], per layer the cost of each candidate)."""
        if metric not in METRICS:
            raise HwnasError(f"cost metric {metric!r}: expected one of {', '.join(METRICS)}")
        fixed = self.value(stem_key(space), metric) + self.value(head_key(space), metric)
        if metric == "latency":
            fixed += self.offset_ms
        return fixed, [[self.value(k, metric) for k in row] for row in layer_keys(space)]

    def predict(self, space: SpaceSpec, choices: Sequence[str], metric: str = "latency") -> float:
        fixed, rows = self.matrix(space, metric)
        return fixed + sum(
            row[layer.candidates.index(op)] for row, layer, op in zip(rows, space.layers, choices, strict=True)
        )

    def to_dict_for(self, space: SpaceSpec) -> dict[str, Any]:
        """The table as JSON-able data, with the grid of this space's layers (ms)."""
        fixed, rows = self.matrix(space, "latency")
        return {
            "meta": self.meta,
            "offset_ms": self.offset_ms,
            "fixed_ms": fixed,
            "layers": [
                dict(zip(layer.candidates, row, strict=True)) for layer, row in zip(space.layers, rows, strict=True)
            ],
        }

    def to_json(self) -> str:
        return (
            json_text(
                {"format": FORMAT, "meta": self.meta, "offset_ms": self.offset_ms, "entries": self.entries}, indent=1
            )
            + "\n"
        )

    def save(self, path: str | Path) -> Path:
        self.path = atomic_write_text(path, self.to_json())
        return self.path

    @classmethod
    def load(cls, path: str | Path) -> CostTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise HwnasError(f"cost table {path}: cannot read ({exc.strerror})") from None
        except ValueError as exc:
            raise HwnasError(f"cost table {path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise HwnasError(f"cost table {path}: expected a JSON object with format {FORMAT!r} and entries")
        for key, entry in data["entries"].items():
            try:
                float(entry["latency_ms"]["median"]) + float(entry["macs"]) + float(entry["params"])
            except (KeyError, TypeError, ValueError):
                raise HwnasError(f"cost table {path}: entry {key!r} lacks latency_ms.median, macs or params") from None
        return cls(dict(data.get("meta", {})), data["entries"], float(data.get("offset_ms", 0.0)), path)


def _blocks_fingerprint() -> str:
    """Hash of the code that builds the priced modules (plugins included): a measured table goes stale when it
    changes."""
    digest = hashlib.sha256()
    sources = [*sorted((PACKAGE_DIR / "blocks").glob("*.py")), *sorted((PACKAGE_DIR / "nets").glob("*.py"))]
    for path in [*sources, PACKAGE_DIR / "model.py"]:
        digest.update(path.read_bytes())
    digest.update(families_fingerprint().encode())  # registered ops and plugins
    return digest.hexdigest()[:12]


class TimingOptions(TypedDict, total=False):
    """The keyword options of `build_table` and `load_or_build` that say how latency is measured (see `Timing`)."""

    device: str
    threads: int
    batch: int
    dtype: str


@dataclass(frozen=True)
class Timing:
    """How a table's latency is measured: on `device` (cpu, cuda, cuda:N, onnxruntime), `threads` pinned,
    a `batch` of inputs in `dtype`."""

    device: str = "cpu"
    threads: int = 1
    batch: int = 1
    dtype: str = "float32"

    def check(self) -> None:
        """Raise one HwnasError line if this machine cannot measure this way."""
        check_device(self.device)
        if self.dtype not in DTYPES:
            raise HwnasError(f"dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}")

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

    def measure(self, module: nn.Module, shape: tuple[int, ...], min_run_time: float) -> dict[str, Any]:
        """The `latency_ms` field of a table entry: `module` timed on a batch of `shape` inputs."""
        lat = measure_latency(module, shape, min_run_time=min_run_time, **asdict(self))
        return {"median": lat.median_ms, "mean": lat.mean_ms, "std": lat.std_ms, "count": lat.runs}


def priced_entries(
    units: Units, latency: Callable[[Unit, nn.Module, ModelProfile], dict[str, Any]], progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Each unit's table entry: its MACs and params counted on one image, and its `latency_ms` field from
    `latency(unit, module, counted)`. Building the modules leaves the caller's random state as it was."""
    entries: dict[str, dict[str, Any]] = {}
    with torch.random.fork_rng(devices=[]):
        for key, unit in tqdm(units.items(), disable=None if progress else True, file=sys.stderr, leave=False):
            module = unit.build()
            counted = count(module, unit.input_shape, [(key, unit.op, module)])  # before timing moves it
            entries[key] = {
                "latency_ms": latency(unit, module, counted),
                "macs": counted.macs,
                "params": counted.params,
            }
    return entries


def build_table(
    space: SpaceSpec | CellSpaceSpec,
    *,
    min_run_time: float = 0.2,
    progress: bool = True,
    measure: bool = True,
    **options: Unpack[TimingOptions],
) -> CostTable:
    """Measure every distinct (op, input shape) of `space` as `options` say (`Timing`); count its MACs and params.

    With `measure=False` only MACs and params are counted (latency entries are 0, `meta.measured` false).
    """
    timing = Timing(**options)
    timing.check()
    units = space_units(space)
    if not measure:
        entries = priced_entries(units, lambda unit, module, counted: dict(NOT_MEASURED))
        return CostTable({"space": space.name, "space_fingerprint": space.fingerprint(), "measured": False}, entries)
    logger.info(
        f"hwnas: measuring {len(units)} layer/candidate shapes of {space.name} on {timing.device} "
        f"({device_name(timing.device)}), {timing.threads} thread(s) pinned, batch {timing.batch}, {timing.dtype}"
    )
    start = time.time()
    entries = priced_entries(
        units, lambda unit, module, counted: timing.measure(module, unit.input_shape, min_run_time), progress
    )
    meta = {
        **timing.table_key(space),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - start, 1),
        "unit": "ms; macs and params per image",
    }
    return CostTable(meta, entries)


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
