"""`CellCostModel`: the differentiable expected cost of a cell network, for hardware-aware DARTS.

Priced from a table of the evaluation network's units (`cell_units`). Expected cost under the
architecture weights: a derived cell keeps two inputs per node, so an edge counts with weight 2/k
for a node of k inputs (2·softmax(β) with edge normalisation), and its op cost is the mean under
softmax(α), renormalised without `none` unless the genotype is derived sparse (where `none` can be
kept and costs 0). Normal cells share α, so the costs of all normal cells are summed per edge
(likewise for reduction cells). Concatenation and the node sums are not priced; `hwnas latency
validate` measures the gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..spaces import CellSpaceSpec, Genotype
from ..spaces.genotype import CELL_TYPES
from ..supernet.cell_supernet import edge_index, edge_inputs
from .cell_units import edge_key, head_key, preprocess_keys, stem_key
from .cost_model import UNITS
from .table import CostTable


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
