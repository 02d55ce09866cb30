"""Costs of cell networks: the units a latency table measures, and `CellCostModel` for hardware-aware DARTS.

The table is built for the *evaluation* network (its widths and depth), since that is what
runs on the device. It holds the stem, each cell's two input preprocessors, every op on
every edge shape (`layer_key`, as layer-wise spaces) and the head. `none` costs nothing.

Expected cost under the architecture weights: a derived cell keeps two inputs per node, so
an edge counts with weight 2/k for a node of k inputs (2·softmax(β) with edge normalisation),
and its op cost is the mean under softmax(α), renormalised without `none` unless the
genotype is derived sparse (where `none` can be kept and costs 0). Normal cells share α,
so the costs of all normal cells are summed per edge (likewise for reduction cells).
Concatenation and the node sums are not priced; `hwnas latency validate` measures the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..blocks import build_block
from ..blocks.cell_ops import FactorizedReduce, ReLUConvBN
from ..nets import CellStem
from ..spaces import CellShape, CellSpaceSpec, Genotype
from ..spaces.genotype import CELL_TYPES
from ..supernet.cells import edge_index, edge_inputs
from .hardware_loss import UNITS
from .table import CostTable, layer_key

Units = dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]]


class _Head(nn.Module):
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
    """Every distinct priced unit of the evaluation network of `space`, with a builder and its input shape."""
    cfg = space.block_config
    units: Units = {
        stem_key(space): (lambda: CellStem(space.stem, space.knobs["init_channels"], cfg), space.input_size)
    }
    for cell in space.cells:
        pre0, pre1 = preprocess_keys(space, cell)
        pp_hw = _prev_prev_hw(space, cell)
        c = cell.channels
        units.setdefault(
            pre0,
            (
                (lambda c=cell: FactorizedReduce(c.c_prev_prev, c.channels, cfg))
                if cell.reduction_prev
                else (lambda c=cell: ReLUConvBN(c.c_prev_prev, c.channels, 1, 1, cfg)),
                (cell.c_prev_prev, *pp_hw),
            ),
        )
        units.setdefault(
            pre1, (lambda c=cell: ReLUConvBN(c.c_prev, c.channels, 1, 1, cfg), (cell.c_prev, *cell.input_hw))
        )
        for _, state in edge_inputs(space.nodes):
            stride, hw = cell.edge_stride(state), cell.edge_input_hw(state)
            for op in space.ops:
                if op != "none":
                    units.setdefault(
                        edge_key(space, cell, state, op),
                        (lambda op=op, c=c, s=stride: build_block(op, c, c, s, cfg), (c, *hw)),
                    )
    last = space.cells[-1]
    units[head_key(space)] = (
        lambda: _Head(last.multiplier * last.channels, space.num_classes),
        (last.multiplier * last.channels, *last.output_hw),
    )
    return units


@dataclass
class CellCostModel:
    """Fixed cost plus, per cell type, the summed cost of each (edge, op) over that type's cells."""

    metric: str
    fixed: float
    costs: dict[str, torch.Tensor]  # cell type -> [edges x ops], in the metric's unit
    ops: tuple[str, ...]
    nodes: int
    sparse: bool = False

    @classmethod
    def from_table(
        cls,
        table: CostTable,
        space: CellSpaceSpec,
        metric: str,
        sparse: bool = False,
        device: torch.device | str = "cpu",
    ) -> CellCostModel:
        scale = UNITS[metric][1]
        fixed = table.value(stem_key(space), metric) + table.value(head_key(space), metric)
        if metric == "latency":
            fixed += table.offset_ms
        inputs = edge_inputs(space.nodes)
        costs = {t: torch.zeros(len(inputs), len(space.ops), dtype=torch.float64) for t in CELL_TYPES}
        for cell in space.cells:
            fixed += sum(table.value(k, metric) for k in preprocess_keys(space, cell))
            for e, (_, state) in enumerate(inputs):
                for o, op in enumerate(space.ops):
                    if op != "none":
                        costs[cell.kind][e, o] += table.value(edge_key(space, cell, state, op), metric)
        moved = {t: (c * scale).to(device=device, dtype=torch.float32) for t, c in costs.items()}
        return cls(metric, fixed * scale, moved, space.ops, space.nodes, sparse)

    @property
    def unit(self) -> str:
        return UNITS[self.metric][0]

    def expected(self, op_probs: dict[str, torch.Tensor], edge_probs: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """Differentiable expected cost of the derived network under softmax(α) (and softmax(β))."""
        total = torch.as_tensor(self.fixed, device=next(iter(self.costs.values())).device)
        keep = torch.tensor([self.sparse or op != "none" for op in self.ops], device=total.device, dtype=torch.float32)
        share = torch.tensor([2.0 / (node + 2) for node, _ in edge_inputs(self.nodes)], device=total.device)
        for t in CELL_TYPES:
            p = op_probs[t] * keep
            p = p / p.sum(-1, keepdim=True)
            weight = 2 * edge_probs[t] if edge_probs.get(t) is not None else share
            total = total + (weight * (p * self.costs[t]).sum(-1)).sum()
        return total

    def of(self, genotype: Genotype) -> float:
        """Cost of a derived network (its cells must have this model's node count)."""
        total = self.fixed
        for t in CELL_TYPES:
            for e, (op, state) in enumerate(genotype.edges(t)):
                total += float(self.costs[t][edge_index(e // 2, state), self.ops.index(op)])
        return total

    def cheapest(self) -> tuple[float, str]:
        """The cost of the cheapest genotype and a description of it."""
        total, parts = self.fixed, []
        allowed = [o for o, op in enumerate(self.ops) if self.sparse or op != "none"]
        for t in CELL_TYPES:
            cost = self.costs[t][:, allowed]
            for node in range(self.nodes):
                start = edge_index(node, 0)
                best = cost[start : start + node + 2].min(1)
                order = sorted(range(node + 2), key=lambda j: float(best.values[j]))[:2]
                for j in order:
                    total += float(best.values[j])
                    parts.append(f"{t} n{node}: {self.ops[allowed[int(best.indices[j])]]}<-{j}")
        return total, "; ".join(parts)
