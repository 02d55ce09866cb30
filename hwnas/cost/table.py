"""`CostTable`: MACs, params and measured latency of every (layer, candidate) of a space.

The file is JSON, one entry per distinct layer shape and op, keyed by a self-describing
string such as `ir_k3_e6-input:16x56x56-output:24-stride:2-act:relu-e1:keep`, with the
latency's fastest and median timed block, mean, spread and number of blocks:

    {"format": "hwnas.costtable/1",
     "meta": {"space": "fbnet", "device": "cpu", "device_name": "...", "threads": 1,
              "latency_estimate": "min", ...},
     "offset_ms": 0.41,
     "entries": {"ir_k3_e6-input:...": {"latency_ms": {"min": 0.25, "median": 0.26, "mean": 0.26,
                                        "std": 0.003, "count": 30}, "macs": 1234, "params": 567}, ...}}

`meta.latency_estimate` names the statistic that prices an entry. `stem-...` and `head-...` entries
price the fixed parts and `offset_ms` what whole networks cost beyond the sum of their parts, so a
table predicts whole networks. `hwnas.cost.build` measures tables and caches them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from ..choices import COST_METRICS as METRICS
from ..errors import HwnasError
from ..io import atomic_write_text, json_text
from ..readers import load_json
from ..spaces import CellSpaceSpec, SpaceSpec
from .cell_units import cell_units
from .counting import ModelProfile, count
from .units import Unit, Units, head_key, layer_keys, layer_units, stem_key

FORMAT = "hwnas.costtable/1"
NOT_MEASURED = {"median": 0.0, "mean": 0.0, "std": 0.0, "count": 0}


def space_units(space: SpaceSpec | CellSpaceSpec) -> Units:
    """Every distinct priced unit of `space` under its table key: what `build_table` measures."""
    return cell_units(space) if space.kind == "cell" else layer_units(space)


@dataclass
class CostTable:
    meta: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    offset_ms: float = 0.0
    path: Path | None = field(default=None, compare=False)

    @property
    def latency_estimate(self) -> str:
        """Which statistic of an entry's `latency_ms` prices it: `min` (the fastest of interleaved rounds, what
        `build_table` measures) or `median` (tables from bundles and earlier versions)."""
        return str(self.meta.get("latency_estimate", "median"))

    def value(self, key: str, metric: str) -> float:
        entry = self.entries[key]
        return float(entry["latency_ms"][self.latency_estimate]) if metric == "latency" else float(entry[metric])

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
        """A table file, read strictly (UTF-8 JSON without repeated keys, bounded) and checked entry by entry:
        latency, MACs and params finite and >= 0, not every latency zero, a finite offset."""
        path = Path(path)
        data = load_json(path, "cost table")
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise HwnasError(f"cost table {path}: expected a JSON object with format {FORMAT!r} and entries")
        offset = data.get("offset_ms", 0.0)
        if not is_amount(offset, negative=True):
            raise HwnasError(f"cost table {path}: offset_ms is {offset!r}; expected a finite number of ms")
        meta = data.get("meta", {})
        table = cls(dict(meta) if isinstance(meta, dict) else {}, data["entries"], float(offset), path)
        estimate = table.latency_estimate
        for key, entry in data["entries"].items():
            try:
                values = (entry["latency_ms"][estimate], entry["macs"], entry["params"])
            except (KeyError, TypeError):
                raise HwnasError(
                    f"cost table {path}: entry {key!r} lacks latency_ms.{estimate}, macs or params"
                ) from None
            if not all(is_amount(v) for v in values):
                raise HwnasError(
                    f"cost table {path}: entry {key!r} has latency_ms.{estimate}, macs, params {list(values)!r}; "
                    "expected finite numbers >= 0"
                )
        if data["entries"] and not any(e["latency_ms"][estimate] > 0 for e in data["entries"].values()):
            raise HwnasError(f"cost table {path}: every latency is 0 ms; expected the times a device measured")
        return table


def is_amount(value: Any, negative: bool = False) -> bool:
    """Whether `value` is a finite number (not a bool), >= 0 unless `negative` is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and (negative or value >= 0)
    except OverflowError:  # an integer too large for a float
        return False


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
