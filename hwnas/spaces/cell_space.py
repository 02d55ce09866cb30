"""`CellSpaceSpec`: a DARTS-style cell space (`kind: cell` in a space YAML) and the shapes of its cells.

    name: darts
    kind: cell
    source: Liu et al., DARTS, ICLR 2019
    knobs: {input_size: [3, 32, 32], num_classes: 10, init_channels: 16, layers: 8, nodes: 4, ops: darts}
    search_defaults: {epochs: 50, lr_min: 0.001}     # options of `hwnas search` for this space

A network is a stem, `layers` cells (reduction cells at layers//3 and 2*layers//3 double the
channels and halve the resolution), global pooling and a classifier. With `shared_cells: true` the
reduction cells run the normal cell's genotype, so one cell type is searched (as NAS-Bench-201). Each cell reads the
outputs of the two cells before it, and its nodes each sum two ops applied to earlier states.
The search network and the evaluation network of a genotype are the same space with
different knobs (init_channels 16 / 36, layers 8 / 20 in DARTS).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ..blocks import BlockConfig, builtin_op, check_op, check_output_shape
from ..blocks.cell_ops import OP_SETS
from ..errors import HwnasError, SpaceError
from ..limits import MAX_CHANNELS, MAX_CLASSES, check_footprint
from .knobs import INPUT_SIZE_EXPECTED, InputSized, input_size_ok

STEMS = ("auto", "cifar", "cnas64", "cnas128", "imagenet")
STEM_SIZES = (("cifar", 32), ("cnas64", 64), ("cnas128", 128), ("imagenet", 256))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ops_ok(v: Any) -> bool:
    return (isinstance(v, str) and v in OP_SETS) or (
        isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) for x in v)
    )


CELL_KNOBS: dict[str, tuple[str, Any, Any]] = {
    "input_size": (INPUT_SIZE_EXPECTED, input_size_ok, [3, 32, 32]),
    "num_classes": (f"an integer >= 1 (at most {MAX_CLASSES:,})", lambda v: _is_int(v) and 1 <= v <= MAX_CLASSES, 10),
    "init_channels": (
        f"an integer in 2..{MAX_CHANNELS // 4}",
        lambda v: _is_int(v) and 2 <= v <= MAX_CHANNELS // 4,
        16,
    ),
    "layers": (
        "an integer in 3..1000 (reduction cells sit at layers//3 and 2*layers//3)",
        lambda v: _is_int(v) and 3 <= v <= 1000,
        8,
    ),
    "nodes": ("an integer in 1..32 (intermediate nodes per cell)", lambda v: _is_int(v) and 1 <= v <= 32, 4),
    "ops": (f"an op set ({', '.join(OP_SETS)}) or a list of op names", _ops_ok, "darts"),
    "stem": (f"one of {', '.join(STEMS)}", lambda v: v in STEMS, "auto"),
    "stem_multiplier": ("an integer in 1..16", lambda v: _is_int(v) and 1 <= v <= 16, 3),
    "auxiliary": ("true or false", lambda v: isinstance(v, bool), False),
    "classifier": ("linear or cosine", lambda v: v in ("linear", "cosine"), "linear"),
    "shared_cells": (
        "true or false (true: the reduction cells repeat the normal cell, one cell type as NAS-Bench-201)",
        lambda v: isinstance(v, bool),
        False,
    ),
}


@dataclass(frozen=True)
class CellShape:
    """One cell of a network: its inputs' widths, its own width C and the resolution it works at."""

    index: int
    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    channels: int
    input_hw: tuple[int, int]  # resolution of the cell's input states after preprocessing
    output_hw: tuple[int, int]
    multiplier: int  # output channels = multiplier * channels

    @property
    def kind(self) -> str:
        return "reduce" if self.reduction else "normal"

    def edge_stride(self, state: int) -> int:
        """Stride of an op reading `state`: 2 on a reduction cell's inputs (states 0 and 1), else 1."""
        return 2 if self.reduction and state < 2 else 1

    def edge_input_hw(self, state: int) -> tuple[int, int]:
        """Resolution of `state`: the cell's inputs, or its own (reduced) nodes."""
        return self.input_hw if state < 2 else self.output_hw


@dataclass(frozen=True)
class StemShape:
    kind: str
    c_in: int
    c_prev_prev: int
    c_prev: int
    hw_prev_prev: tuple[int, int]
    hw_prev: tuple[int, int]

    @property
    def reduction_prev(self) -> bool:
        return self.hw_prev_prev != self.hw_prev


@dataclass(frozen=True)
class CellSpaceSpec(InputSized):
    name: str
    origin: str
    declaration: dict[str, Any] = field(repr=False)
    knobs: dict[str, Any]
    ops: tuple[str, ...]
    stem: StemShape
    cells: tuple[CellShape, ...]
    block_config: BlockConfig
    kind: str = "cell"

    @property
    def nodes(self) -> int:
        return self.knobs["nodes"]

    @property
    def num_classes(self) -> int:
        return self.knobs["num_classes"]

    @property
    def shared_cells(self) -> bool:
        """Whether the reduction cells repeat the normal cell's genotype (one cell type searched)."""
        return self.knobs["shared_cells"]

    @property
    def auxiliary_index(self) -> int:
        """The cell whose output feeds the auxiliary head (the second reduction cell)."""
        return 2 * self.knobs["layers"] // 3

    def shapes(self, normal_multiplier: int, reduce_multiplier: int) -> tuple[CellShape, ...]:
        """The cells' shapes when normal and reduction cells concatenate these many states."""
        return _cell_shapes(self.knobs, self.stem, normal_multiplier, reduce_multiplier)

    def with_knobs(self, **overrides: Any) -> CellSpaceSpec:
        return resolve_cell_space(self.name, self.origin, self.declaration, {**self.knobs, **overrides})

    def knob_overrides(self) -> dict[str, Any]:
        declared = resolve_cell_space(self.name, self.origin, self.declaration, {}).knobs
        return {k: v for k, v in self.knobs.items() if declared.get(k) != v}

    def fingerprint(self) -> str:
        blob = json.dumps({"declaration": self.declaration, "knobs": self.knobs}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stem(knobs: dict[str, Any], where: str) -> StemShape:
    c_in, h, w = knobs["input_size"]
    kind = knobs["stem"]
    if kind == "auto":
        side = max(h, w)
        fitting = [name for name, size in STEM_SIZES if side <= size]
        if not fitting:
            sizes = ", ".join(f"<= {size} px ({name})" for name, size in STEM_SIZES)
            raise SpaceError(
                f"{where}: input_size {knobs['input_size']}: no cell-space stem is made for inputs of {side} px; "
                f"expected {sizes}, or set the stem knob"
            )
        kind = fitting[0]
    c = knobs["init_channels"]
    wide = knobs["stem_multiplier"] * c

    def down(hw: tuple[int, int], times: int = 1) -> tuple[int, int]:
        for _ in range(times):
            hw = (-(-hw[0] // 2), -(-hw[1] // 2))
        return hw

    if kind == "cifar":
        return StemShape(kind, c_in, wide, wide, (h, w), (h, w))
    if kind in ("cnas64", "cnas128"):
        return StemShape(kind, c_in, wide, wide, down((h, w)), down((h, w)))
    return StemShape(kind, c_in, c, c, down((h, w), 2), down((h, w), 3))


def _cell_shapes(
    knobs: dict[str, Any], stem: StemShape, normal_multiplier: int, reduce_multiplier: int
) -> tuple[CellShape, ...]:
    layers, c = knobs["layers"], knobs["init_channels"]
    reductions = {layers // 3, 2 * layers // 3}
    c_pp, c_p, hw, reduction_prev = stem.c_prev_prev, stem.c_prev, stem.hw_prev, stem.reduction_prev
    cells = []
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        out_hw = (-(-hw[0] // 2), -(-hw[1] // 2)) if reduction else hw
        multiplier = reduce_multiplier if reduction else normal_multiplier
        cells.append(CellShape(i, reduction, reduction_prev, c_pp, c_p, c, hw, out_hw, multiplier))
        c_pp, c_p, hw, reduction_prev = c_p, multiplier * c, out_hw, reduction
    return tuple(cells)


def _op_problem(cells: tuple[CellShape, ...], ops: tuple[str, ...]) -> tuple[CellShape, str] | None:
    """The first cell and the reason one of `ops` cannot run in it, or None when all can."""
    for cell in cells:
        for op in ops:
            for stride in (1, 2) if cell.reduction else (1,):
                try:
                    check_op(op, cell.channels, cell.channels, stride)
                except HwnasError as exc:
                    return cell, str(exc)
    return None


def _check_output_shapes(cells: tuple[CellShape, ...], ops: tuple[str, ...], where: str) -> None:
    """Every registered op (built-in ones are right by construction) keeps its cell's shape, or halves its map at
    stride 2 (`check_output_shape`)."""
    registered = [op for op in ops if not builtin_op(op)]
    for cell in cells:
        for op in registered:
            for stride in (1, 2) if cell.reduction else (1,):
                try:
                    check_output_shape(op, cell.channels, cell.channels, stride, cell.input_hw, BlockConfig())
                except HwnasError as exc:
                    raise SpaceError(f"{where}: cell {cell.index} ({cell.channels} channels): {exc}") from None


def _width_fits(knobs: dict[str, Any], ops: tuple[str, ...], width: int) -> bool:
    trial = {**knobs, "init_channels": width}
    return _op_problem(_cell_shapes(trial, _stem(trial, ""), trial["nodes"], trial["nodes"]), ops) is None


def _widths_hint(knobs: dict[str, Any], ops: tuple[str, ...]) -> str:
    """The nearest init_channels below and above the given one that every op fits, as a clause; '' if none."""
    width = knobs["init_channels"]
    below = next((w for w in range(width - 1, 1, -1) if _width_fits(knobs, ops, w)), None)
    above = next((w for w in range(width + 1, 4 * width + 64) if _width_fits(knobs, ops, w)), None)
    found = [str(w) for w in (below, above) if w is not None]
    if not found:
        return ""
    return (
        f"; init_channels {width} does not fit these ops, expected e.g. {' or '.join(found)} "
        "(--init-channels, or --eval-init-channels for a search's evaluation network)"
    )


def _check_footprint(
    knobs: dict[str, Any], stem: StemShape, cells: tuple[CellShape, ...], num_ops: int, where: str
) -> None:
    """Estimate parameters (a 1x1 conv per op on every edge, the classifier) and the largest feature map."""
    edges = sum(2 + i for i in range(knobs["nodes"]))
    params = sum(edges * num_ops * cell.channels**2 for cell in cells)
    last = cells[-1].multiplier * cells[-1].channels
    params += last * knobs["num_classes"]
    c_in, h, w = knobs["input_size"]
    maps = [c_in * h * w, stem.c_prev * stem.hw_prev[0] * stem.hw_prev[1]]
    maps += [cell.multiplier * cell.channels * cell.input_hw[0] * cell.input_hw[1] for cell in cells]
    check_footprint(params, max(maps), where)


def resolve_cell_space(
    name: str, origin: str, declaration: dict[str, Any], knob_values: dict[str, Any]
) -> CellSpaceSpec:
    """Check the knobs of a cell space and work out its op set, stem and cells."""
    where = f"space {name}"
    knobs = {k: default for k, (_, _, default) in CELL_KNOBS.items()}
    for source, values in (("knobs", declaration.get("knobs")), ("space_args", knob_values)):
        if values is None:
            continue
        if not isinstance(values, dict):
            raise SpaceError(f"{where}: {source}: got {values!r}, expected a mapping of knob names to values")
        for key, value in values.items():
            if key not in CELL_KNOBS:
                raise SpaceError(f"{where}: {source}: unknown knob {key!r}; expected one of {', '.join(CELL_KNOBS)}")
            expected, valid, _ = CELL_KNOBS[key]
            if not valid(value):
                raise SpaceError(f"{where}: {source}.{key}: got {value!r}, expected {expected}")
            knobs[key] = value
    ops = tuple(OP_SETS[knobs["ops"]] if isinstance(knobs["ops"], str) else knobs["ops"])
    if len(set(ops)) != len(ops):
        raise SpaceError(f"{where}: ops {list(ops)} repeat an op")
    if all(op == "none" for op in ops):
        raise SpaceError(f"{where}: ops {list(ops)}: expected at least one op besides none (the zero op)")
    stem = _stem(knobs, where)
    cells = _cell_shapes(knobs, stem, knobs["nodes"], knobs["nodes"])
    _check_footprint(knobs, stem, cells, len(ops), where)
    problem = _op_problem(cells, ops)
    if problem is not None:
        cell, reason = problem
        raise SpaceError(f"{where}: cell {cell.index} ({cell.channels} channels): {reason}{_widths_hint(knobs, ops)}")
    _check_output_shapes(cells, ops, where)
    if knobs["auxiliary"]:
        at = 2 * knobs["layers"] // 3
        hw, need = cells[at].output_hw, 7 if stem.kind == "imagenet" else 8
        if min(hw) < need:
            raise SpaceError(
                f"{where}: auxiliary: the auxiliary head reads cell {at} at {hw[0]}x{hw[1]}, expected at least "
                f"{need}x{need} (a larger input_size, or auxiliary: false)"
            )
    return CellSpaceSpec(name, origin, declaration, knobs, ops, stem, cells, BlockConfig())
