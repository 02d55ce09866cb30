"""The priced units of a cell space's evaluation network and their table keys.

The table is built for the *evaluation* network (its widths and depth), since that is what
runs on the device. It holds the stem, each cell's two input preprocessors, every op on
every edge shape (`layer_key`, as layer-wise spaces) and the head. `none` costs nothing.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..blocks import build_block
from ..blocks.cell_ops import FactorizedReduce, ReLUConvBN
from ..nets import CellStem
from ..spaces import CellShape, CellSpaceSpec
from ..supernet.cell_supernet import edge_inputs
from .units import Unit, Units, layer_key


class CellHead(nn.Module):
    """Global average pooling and the linear classifier of a cell network."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean((2, 3)))


def _shape(c: int, hw: tuple[int, int]) -> str:
    return f"{c}x{hw[0]}x{hw[1]}"


def stem_key(space: CellSpaceSpec) -> str:
    st = space.stem
    return f"cellstem-{st.kind}-input:{'x'.join(map(str, space.input_size))}-output:{st.c_prev_prev}+{st.c_prev}"


def head_key(space: CellSpaceSpec) -> str:
    last = space.cells[-1]
    return f"cellhead-input:{_shape(last.multiplier * last.channels, last.output_hw)}-classes:{space.num_classes}"


def _prev_prev_hw(space: CellSpaceSpec, cell: CellShape) -> tuple[int, int]:
    if cell.index >= 2:
        return space.cells[cell.index - 2].output_hw
    if cell.index == 1:
        return space.stem.hw_prev
    return space.stem.hw_prev_prev


def preprocess_keys(space: CellSpaceSpec, cell: CellShape) -> tuple[str, str]:
    pp_hw = _prev_prev_hw(space, cell)
    first = "factorized_reduce" if cell.reduction_prev else "relu_conv_bn_1x1"
    stride = 2 if cell.reduction_prev else 1
    return (
        f"{first}-input:{_shape(cell.c_prev_prev, pp_hw)}-output:{cell.channels}-stride:{stride}",
        f"relu_conv_bn_1x1-input:{_shape(cell.c_prev, cell.input_hw)}-output:{cell.channels}-stride:1",
    )


def edge_key(space: CellSpaceSpec, cell: CellShape, state: int, op: str) -> str:
    hw = cell.edge_input_hw(state)
    return layer_key(op, cell.channels, cell.channels, cell.edge_stride(state), hw, space.block_config)


def cell_units(space: CellSpaceSpec) -> Units:
    """Every distinct priced unit of the evaluation network of `space`, in network order."""
    cfg, st = space.block_config, space.stem
    stem_stride = space.input_size[1] // st.hw_prev[0]
    build_stem = partial(CellStem, st, space.knobs["init_channels"], cfg)
    stem = Unit(stem_key(space), "stem", st.c_in, st.c_prev, stem_stride, space.input_size, build_stem)
    units = {stem.key: stem}
    for cell in space.cells:
        c, pp_c, p_c = cell.channels, cell.c_prev_prev, cell.c_prev
        pre0, pre1 = preprocess_keys(space, cell)
        pp_shape = (pp_c, *_prev_prev_hw(space, cell))
        first = (
            Unit(pre0, "factorized_reduce", pp_c, c, 2, pp_shape, partial(FactorizedReduce, pp_c, c, cfg))
            if cell.reduction_prev
            else Unit(pre0, "relu_conv_bn_1x1", pp_c, c, 1, pp_shape, partial(ReLUConvBN, pp_c, c, 1, 1, cfg))
        )
        p_shape = (p_c, *cell.input_hw)
        second = Unit(pre1, "relu_conv_bn_1x1", p_c, c, 1, p_shape, partial(ReLUConvBN, p_c, c, 1, 1, cfg))
        units.setdefault(pre0, first)
        units.setdefault(pre1, second)
        for _, state in edge_inputs(space.nodes):
            stride, shape = cell.edge_stride(state), (c, *cell.edge_input_hw(state))
            for op in (op for op in space.ops if op != "none"):
                key = edge_key(space, cell, state, op)
                units.setdefault(key, Unit(key, op, c, c, stride, shape, partial(build_block, op, c, c, stride, cfg)))
    last = space.cells[-1]
    width = last.multiplier * last.channels
    build_head = partial(CellHead, width, space.num_classes)
    head = Unit(head_key(space), "head", width, space.num_classes, 1, (width, *last.output_hw), build_head)
    units[head.key] = head
    return units
