"""Genotype derivation from architecture weights (DARTS, CNAS's sparse mode, P-DARTS's skip limit).

- DARTS: for each node keep the two incoming edges whose strongest op other than `none` is
  strongest, and on each the strongest op other than `none`.
- sparse (CNAS `--use-sparse`): the same, but `none` competes like any op, so a kept edge may be
  `none` and a node may end up with fewer than two real inputs.
- `max_skip` (P-DARTS): while the normal cell has more `skip_connect` than allowed, the weakest
  derived skip_connect is struck out of the weights and the cell derived again.
Ties go to the lower edge and op index.
"""

from __future__ import annotations

import torch

from ..spaces import Genotype
from ..supernet.cell_supernet import edge_index

SKIP = "skip_connect"


def derive_cell(
    strengths: torch.Tensor, ops: tuple[str, ...], nodes: int, sparse: bool = False
) -> tuple[tuple[str, int], ...]:
    """The (op, input state) pairs of one cell from its [edges x ops] strengths."""
    allowed = [k for k, op in enumerate(ops) if sparse or op != "none"]
    gene: list[tuple[str, int]] = []
    start = 0
    for node in range(nodes):
        rows = strengths[start : start + node + 2, allowed]
        best = rows.max(1)
        order = sorted(range(node + 2), key=lambda j: -float(best.values[j]))[:2]
        for j in order:
            gene.append((ops[allowed[int(best.indices[j])]], j))
        start += node + 2
    return tuple(gene)


def derive_genotype(
    strengths: dict[str, torch.Tensor],
    ops: tuple[str, ...],
    nodes: int,
    *,
    sparse: bool = False,
    max_skip: int | None = None,
    shared: bool = False,
) -> Genotype:
    """Both cells' genotype, concatenating every intermediate node (as DARTS); `shared`: the reduction cell is
    the normal one (a space of one cell type)."""
    normal = strengths["normal"].clone()
    cell = derive_cell(normal, ops, nodes, sparse)
    if max_skip is not None and SKIP in ops:
        k = ops.index(SKIP)
        while sum(op == SKIP for op, _ in cell) > max_skip:
            skips = [(node, state) for i, (op, state) in enumerate(cell) if op == SKIP for node in [i // 2]]
            weakest = min(skips, key=lambda ns: float(normal[edge_index(*ns), k]))
            normal[edge_index(*weakest), k] = -1.0
            cell = derive_cell(normal, ops, nodes, sparse)
    concat = tuple(range(2, nodes + 2))
    reduce = cell if shared else derive_cell(strengths["reduce"], ops, nodes, sparse)
    return Genotype(cell, concat, reduce, concat)
