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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..blocks import BlockConfig
from ..cache import PACKAGE_DIR, cache_dir
from ..choices import COST_METRICS
from ..errors import HwnasError
from ..io import atomic_write_text, json_text
from ..nets import ClassifierHead, build_layer, build_stem
from ..spaces import CellSpaceSpec, SpaceSpec
from .counting import count
from .latency import DTYPES, check_device, device_name, measure_latency

FORMAT = "hwnas.costtable/1"
METRICS = COST_METRICS


def _config_tag(cfg: BlockConfig) -> str:
    tag = f"act:{cfg.activation}-e1:{'keep' if cfg.expand_at_e1 else 'drop'}"
    return tag if cfg.norm_inside else f"{tag}-norm:outside"


def layer_key(op: str, c_in: int, c_out: int, stride: int, hw: tuple[int, int], cfg: BlockConfig) -> str:
    return f"{op}-input:{c_in}x{hw[0]}x{hw[1]}-output:{c_out}-stride:{stride}-{_config_tag(cfg)}"


def stem_key(space: SpaceSpec) -> str:
    parts = "+".join(f"{s.op}/{s.c_out}/s{s.stride}" for s in space.stem) or "none"
    return f"stem-{parts}-input:{'x'.join(map(str, space.input_size))}-{_config_tag(space.block_config)}"


def head_key(space: SpaceSpec) -> str:
    h = space.head
    return (
        f"head-{h.op if h.channels else 'none'}-input:{h.c_in}x{h.input_hw[0]}x{h.input_hw[1]}-channels:{h.channels}"
        f"-classes:{h.num_classes}{'-cosine' if h.cosine else ''}-{_config_tag(space.block_config)}"
    )


def _layer_keys(space: SpaceSpec) -> list[list[str]]:
    cfg = space.block_config
    return [
        [layer_key(op, la.c_in, la.c_out, la.stride, la.input_hw, cfg) for op in la.candidates] for la in space.layers
    ]


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
        keys = list(_units(space))
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
        return fixed, [[self.value(k, metric) for k in row] for row in _layer_keys(space)]

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
    digest = hashlib.sha256()
    for path in [*sorted((PACKAGE_DIR / "blocks").glob("*.py")), PACKAGE_DIR / "model.py", PACKAGE_DIR / "cellnet.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def table_key(space: SpaceSpec | CellSpaceSpec, device: str, threads: int, batch: int, dtype: str) -> dict[str, Any]:
    """Everything a latency table depends on."""
    key = {
        "space": space.name,
        "space_fingerprint": space.fingerprint(),
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "threads": threads,
        "batch": batch,
        "dtype": dtype,
        "blocks": _blocks_fingerprint(),
    }
    if device == "onnxruntime":
        key["onnxruntime"] = version("onnxruntime")
    return key


def _units(space: SpaceSpec | CellSpaceSpec) -> dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]]:
    """Each distinct key of the space with a module to time and its input shape (built lazily)."""
    if space.kind == "cell":
        from .cells import cell_units

        return cell_units(space)
    cfg = space.block_config
    units: dict[str, Any] = {stem_key(space): (lambda: build_stem(space), space.input_size)}
    for layer in space.layers:
        for op in layer.candidates:
            key = layer_key(op, layer.c_in, layer.c_out, layer.stride, layer.input_hw, cfg)
            units.setdefault(key, (lambda op=op, la=layer: build_layer(op, la, cfg), layer.input_shape))
    head = space.head
    units[head_key(space)] = (lambda: ClassifierHead(space), (head.c_in, *head.input_hw))
    return units


def _measure(
    module: nn.Module, shape: tuple[int, ...], device: str, threads: int, batch: int, dtype: str, min_run_time: float
) -> dict[str, Any]:
    lat = measure_latency(
        module, shape, device=device, batch=batch, threads=threads, dtype=dtype, min_run_time=min_run_time
    )
    counted = _count_only(module, shape)
    return {
        **counted,
        "latency_ms": {"median": lat.median_ms, "mean": lat.mean_ms, "std": lat.std_ms, "count": lat.runs},
    }


def _count_only(module: nn.Module, shape: tuple[int, ...]) -> dict[str, Any]:
    counted = count(module, shape, [("unit", "unit", module)])
    return {
        "latency_ms": {"median": 0.0, "mean": 0.0, "std": 0.0, "count": 0},
        "macs": counted.macs,
        "params": counted.params,
    }


def build_table(
    space: SpaceSpec | CellSpaceSpec,
    *,
    device: str = "cpu",
    threads: int = 1,
    batch: int = 1,
    dtype: str = "float32",
    min_run_time: float = 0.2,
    progress: bool = True,
    measure: bool = True,
) -> CostTable:
    """Measure every distinct (op, input shape) of `space` on `device`; count its MACs and params.

    With `measure=False` only MACs and params are counted (latency entries are 0, `meta.measured` false).
    """
    from tqdm import tqdm

    check_device(device)
    if dtype not in DTYPES:
        raise HwnasError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    units = _units(space)
    if not measure:
        with torch.random.fork_rng(devices=[]):
            entries = {key: _count_only(make(), shape) for key, (make, shape) in units.items()}
        return CostTable({"space": space.name, "space_fingerprint": space.fingerprint(), "measured": False}, entries)
    print(
        f"hwnas: measuring {len(units)} layer/candidate shapes of {space.name} on {device} "
        f"({device_name(device)}), {threads} thread(s) pinned, batch {batch}, {dtype}",
        file=sys.stderr,
    )
    entries: dict[str, dict[str, Any]] = {}
    start = time.time()
    with torch.random.fork_rng(devices=[]):  # measuring leaves the caller's random state as it was
        for key, (make, shape) in tqdm(units.items(), disable=None if progress else True, file=sys.stderr, leave=False):
            entries[key] = _measure(make(), shape, device, threads, batch, dtype, min_run_time)
    meta = {
        **table_key(space, device, threads, batch, dtype),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - start, 1),
        "unit": "ms; macs and params per image",
    }
    return CostTable(meta, entries)


def load_or_build(
    space: SpaceSpec | CellSpaceSpec,
    *,
    device: str = "cpu",
    threads: int = 1,
    batch: int = 1,
    dtype: str = "float32",
    table: str | None = None,
    progress: bool = True,
) -> CostTable:
    """A user's table file (checked to cover the space), else the cached table for exactly these settings,
    else a new measurement (cached). A corrupt or mismatched cache entry is rebuilt, with a message."""
    if table is not None:
        loaded = CostTable.load(table)
        loaded.check_covers(space, f"cost table {table}")
        return loaded
    key = table_key(space, device, threads, batch, dtype)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = cache_dir() / "cost-tables" / f"{space.name}-{device.replace(':', '')}-{digest}.json"
    if path.is_file():
        try:
            cached = CostTable.load(path)
            if {k: cached.meta.get(k) for k in key} != key:
                raise HwnasError(f"cost table {path}: built for other settings")
            cached.check_covers(space, f"cost table {path}")
            return cached
        except HwnasError as exc:
            print(f"hwnas: {exc}; rebuilding it", file=sys.stderr)
    built = build_table(space, device=device, threads=threads, batch=batch, dtype=dtype, progress=progress)
    built.save(path)
    return built
