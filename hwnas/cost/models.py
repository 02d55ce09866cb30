"""Latency models users bring instead of measuring: a function fitted to their phone, an analytical model,
a lookup service. Each is a callable, or an object with a `latency_ms` method, that returns milliseconds.

- A *layer* model prices one entry of a cost table: `model(query: LatencyQuery) -> ms`. `table_from_model`
  fills a `CostTable` with it (the keys `build_table` measures, MACs and params counted as usual), so every
  search can use it: DNAS and DARTS (their per-layer expected cost), one-shot searches, and `--latency-table`
  once the table is saved.
- An *architecture* model prices a whole network: `model(arch: Architecture) -> ms`. Declare one with
  `ArchitectureLatencyModel(model)`; `ArchitectureCostModel` prices the paths of a one-shot search (random,
  evolution, pareto) with it. DNAS and DARTS need per-layer costs, so a table refuses it.

`load_latency_model("MODULE:NAME")` (or `"FILE.py:NAME"`) finds a model by name, for options and config files.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from torch import nn

from ..arch import Architecture
from ..errors import HwnasError
from ..spaces import CellSpaceSpec, SpaceSpec
from .cost_model import UNITS
from .counting import ModelProfile
from .table import CostTable, priced_entries, space_units
from .units import Unit, config_tag

MODEL_DEVICE_PREFIX = "model:"  # a table's `meta.device` when its latency comes from a model


@dataclass(frozen=True)
class LatencyQuery:
    """One entry of a cost table, as a layer latency model sees it (shapes of one image, the timed batch)."""

    op: str  # a candidate op name, "stem", "head", or a part of a cell network ("relu_conv_bn_1x1", ...)
    c_in: int
    c_out: int
    stride: int
    height: int  # of the input
    width: int
    batch: int
    config: str  # the block config tag, e.g. "act:relu-e1:keep"
    key: str  # the table key, e.g. "ir_k3_e6-input:16x56x56-output:24-stride:2-act:relu-e1:keep"
    macs: int  # multiply-accumulates per image, counted as in every table
    params: int

    @classmethod
    def of(cls, unit: Unit, counted: ModelProfile, batch: int, config: str) -> LatencyQuery:
        _, height, width = unit.input_shape
        shape = (unit.c_in, unit.c_out, unit.stride, height, width)
        return cls(unit.op, *shape, batch, config, unit.key, counted.macs, counted.params)


def qualified_name(model: object) -> str:
    """`module.qualname` of a function, or of an object's class."""
    named = model if hasattr(model, "__qualname__") else type(model)
    return f"{named.__module__}.{named.__qualname__}"


def _pricing_function(model: object) -> Callable[[Any], object] | None:
    """The model's `latency_ms` method if it has one, else the model itself if callable, else None."""
    if isinstance(model, type):
        return None
    method = getattr(model, "latency_ms", None)
    if callable(method):
        return method
    return model if callable(model) else None


def signature(takes: str) -> str:
    """What a latency model given `takes` must be, for messages."""
    return f"a callable ({takes}) -> ms, or an object with that latency_ms method"


def checked_ms(value: object, name: str, what: str) -> float:
    """`value` as a latency in ms; one HwnasError line naming the model and `what` it priced unless finite >= 0."""
    try:
        ms = math.nan if isinstance(value, str | bytes | bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ms = math.nan
    if not (math.isfinite(ms) and ms >= 0):
        raise HwnasError(f"latency model {name}: {what} got {value!r}; expected a finite latency >= 0 ms")
    return ms


@dataclass(frozen=True)
class UserLatencyModel:
    """A user's latency model: `source(x)` or `source.latency_ms(x)`, in ms, for an `x` of the kind `takes`
    (`LayerLatencyModel`, `ArchitectureLatencyModel`)."""

    source: object
    kind: ClassVar[str]  # "a layer" or "an architecture"
    takes: ClassVar[str]  # what the model is given
    used_by: ClassVar[str]  # what needs this kind, for messages

    def __post_init__(self) -> None:
        if _pricing_function(self.source) is None:
            raise HwnasError(f"latency model {self.source!r}: expected {signature(self.takes)}")

    @property
    def name(self) -> str:
        return qualified_name(self.source)

    def describe(self, argument: Any) -> str:
        """What `argument` is, for messages."""
        raise NotImplementedError

    def latency_ms(self, argument: Any) -> float:
        """The model's latency of `argument`, checked finite and >= 0."""
        try:
            value = _pricing_function(self.source)(argument)
        except Exception as exc:
            exc.add_note(f"in latency model {self.name} pricing {self.describe(argument)} (given a {self.takes})")
            raise
        return checked_ms(value, self.name, self.describe(argument))


class LayerLatencyModel(UserLatencyModel):
    """A latency model of one table entry: `source(query: LatencyQuery)` or `source.latency_ms(query)`, in ms."""

    kind, takes = "a layer", "hwnas.cost.models.LatencyQuery"
    used_by = "a cost table (as DNAS and DARTS use for their per-layer expected cost)"

    def describe(self, argument: LatencyQuery) -> str:
        return f"entry {argument.key!r}"


class ArchitectureLatencyModel(UserLatencyModel):
    """A latency model of a whole network: `source(arch: Architecture)` or `source.latency_ms(arch)`, in ms."""

    kind, takes = "an architecture", "hwnas.arch.Architecture"
    used_by = "pricing the paths of a one-shot search by whole architectures"

    def describe(self, argument: Architecture) -> str:
        return f"architecture {', '.join(argument.choices) or argument.genotype.describe()}"


Kind = TypeVar("Kind", bound=UserLatencyModel)


def as_model(model: object, kind: type[Kind]) -> Kind:
    """`model` as a latency model of `kind`: as it is if one, wrapped if a bare callable or object with
    `latency_ms`; one HwnasError line if it is a model of the other kind."""
    if isinstance(model, kind):
        return model
    if isinstance(model, UserLatencyModel):
        raise HwnasError(
            f"latency model {model.name} is {model.kind} model; {kind.used_by} needs {kind.kind} latency model: "
            f"{signature(kind.takes)}"
        )
    return kind(model)


def table_from_model(space: SpaceSpec | CellSpaceSpec, model: object, *, batch: int = 1) -> CostTable:
    """A cost table of every entry `space` needs, latency from the layer model `model` for a `batch` of inputs,
    MACs and params counted per image as in a measured table."""
    layer_model = as_model(model, LayerLatencyModel)
    if not (isinstance(batch, int) and batch >= 1):
        raise HwnasError(f"batch {batch!r}: expected an integer >= 1")

    config = config_tag(space.block_config)

    def latency(unit: Unit, module: nn.Module, counted: ModelProfile) -> dict[str, Any]:
        ms = layer_model.latency_ms(LatencyQuery.of(unit, counted, batch, config))
        return {"median": ms, "mean": ms, "std": 0.0, "count": 1}

    entries = priced_entries(space_units(space), latency)
    meta = {
        "space": space.name,
        "space_fingerprint": space.fingerprint(),
        "device": MODEL_DEVICE_PREFIX + layer_model.name,
        "batch": batch,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "unit": "ms; macs and params per image",
    }
    return CostTable(meta, entries)


def is_model_table(table: CostTable) -> bool:
    """Whether `table`'s latency comes from a latency model rather than from measurements on a device."""
    return str(table.meta.get("device", "")).startswith(MODEL_DEVICE_PREFIX)


@dataclass
class ArchitectureCostModel:
    """Latency (ms) of the paths of a layer-wise space, priced by an architecture model (a bare callable or
    object is taken as one): `of` and `cheapest` as `CostModel`'s, so one-shot searches limit (`--max-latency`)
    and trade off (pareto) by it."""

    space: SpaceSpec
    model: ArchitectureLatencyModel
    metric: str = "latency"
    priced: dict[tuple[int, ...], float] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.model = as_model(self.model, ArchitectureLatencyModel)
        if self.space.kind == "cell":
            raise HwnasError(
                f"latency model {self.model.name}: an architecture model prices the paths of a layer-wise space "
                f"for one-shot searches, and {self.space.name} is a cell space; DARTS needs a layer latency model"
            )

    @property
    def unit(self) -> str:
        return UNITS[self.metric][0]

    def of(self, indices: Sequence[int]) -> float:
        """The model's latency of the path choosing candidate `indices[l]` at layer l (asked once per path)."""
        path = tuple(int(i) for i in indices)
        if path not in self.priced:
            choices = [layer.candidates[i] for layer, i in zip(self.space.layers, path, strict=True)]
            self.priced[path] = self.model.latency_ms(Architecture.from_space(self.space, choices))
        return self.priced[path]

    def cheapest(self) -> tuple[float, list[int]]:
        """The cheapest path found by coordinate descent from the first candidates: each layer in turn takes its
        cheapest candidate with the others fixed, until nothing changes (exact when the model sums per-layer costs)."""
        path = [0] * len(self.space.layers)
        best = self.of(path)
        improved = True
        while improved:
            improved = False
            for index, layer in enumerate(self.space.layers):
                for i in range(len(layer.candidates)):
                    trial = [*path[:index], i, *path[index + 1 :]]
                    cost = self.of(trial)
                    if cost < best:
                        path, best, improved = trial, cost, True
        return best, path


def load_latency_model(spec: str) -> UserLatencyModel:
    """The model named `MODULE:NAME` or `FILE.py:NAME`: an `ArchitectureLatencyModel` as it is, anything else
    (a callable or an object with `latency_ms`) as a layer model."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise HwnasError(f"latency model {spec!r}: expected MODULE:NAME or FILE.py:NAME")
    module = _import(where, spec)
    if not hasattr(module, name):
        raise HwnasError(f"latency model {spec!r}: {where} has no {name!r}")
    model = getattr(module, name)
    if isinstance(model, UserLatencyModel):
        return model
    return LayerLatencyModel(model)


def _import(where: str, spec: str) -> Any:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise HwnasError(f"latency model {spec!r}: no file {where}")
        found = importlib.util.spec_from_file_location(f"hwnas_latency_model_{path.stem}", path)
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise HwnasError(f"latency model {spec!r}: cannot import {where} ({exc})") from None
