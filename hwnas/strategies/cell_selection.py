"""Picking a genotype from a trained cell search network other than by α's size: perturbation-based selection
(DARTS-PT, Wang et al., ICLR 2021), and the best of random genotypes scored with the shared weights (RSPS, Li and
Talwalkar, UAI 2019, whose search network trains one random genotype a step: `genotype_mixture`).

DARTS-PT decides every edge of both cells in turn, in an order drawn from the seed: the op (other than `none`,
unless the genotype is sparse) whose removal lowers the network's validation accuracy most is kept, that edge runs
it alone from then on, and the weights are tuned a few steps before the next edge. Then each node keeps the two
input edges whose removal lowers the accuracy most. An accuracy tie goes to the larger loss. The network may have
been trained with α learned (DARTS) or with α fixed uniform (`--mode uniform`, where DARTS-PT measured it best).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..spaces import Genotype
from ..spaces.genotype import CELL_TYPES
from ..supernet.cell_supernet import CellWeights, edge_index, edge_inputs

TUNE_STEPS = 8  # weight steps on the decided edges after each decision

Score = tuple[float, float]  # (top-1, -loss) of the supernet under a mixture: higher is better


def detached(weights: CellWeights) -> CellWeights:
    """A copy of `weights` that selection may edit (and zero: the network then skips the ops at 0)."""
    return CellWeights(
        {t: w.detach().clone() for t, w in weights.ops.items()},
        {t: None if w is None else w.detach().clone() for t, w in weights.edges.items()},
        zeros=True,
    )


Cells = tuple[str, ...]  # the cell types an edit applies to: one, or both when they share one genotype


def without_op(weights: CellWeights, cells: Cells, edge: int, op: int) -> CellWeights:
    """`weights` with op `op` taken out of edge `edge` of the `cells`."""
    out = detached(weights)
    for cell in cells:
        out.ops[cell][edge, op] = 0.0
    return out


def only_op(weights: CellWeights, cells: Cells, edge: int, op: int) -> CellWeights:
    """`weights` with edge `edge` of the `cells` running op `op` alone."""
    out = detached(weights)
    for cell in cells:
        out.ops[cell][edge] = 0.0
        out.ops[cell][edge, op] = 1.0
    return out


def without_edge(weights: CellWeights, cells: Cells, edge: int) -> CellWeights:
    """`weights` with edge `edge` of the `cells` taken out."""
    out = detached(weights)
    for cell in cells:
        out.ops[cell][edge] = 0.0
    return out


def select_genotype(
    weights: CellWeights,
    ops: tuple[str, ...],
    nodes: int,
    score: Callable[[CellWeights], Score],
    tune: Callable[[CellWeights], None],
    seed: int,
    sparse: bool = False,
    shared: bool = False,
) -> Genotype:
    """DARTS-PT's genotype from the supernet's mixture `weights`: `score` rates the supernet under a mixture,
    `tune` trains its weights a few steps under one; `sparse` (CNAS): `none` may be kept on an edge; `shared`:
    the reduction cells repeat the normal cell, so each decision is taken once for both."""
    inputs = edge_inputs(nodes)
    allowed = [k for k, op in enumerate(ops) if sparse or op != "none"]
    groups = [CELL_TYPES] if shared else [(cell,) for cell in CELL_TYPES]
    order = [(cells, edge) for cells in groups for edge in range(len(inputs))]
    random.Random(seed).shuffle(order)
    chosen: dict[Cells, dict[int, int]] = {cells: {} for cells in groups}
    for cells, edge in order:
        kept = min(allowed, key=lambda k: score(without_op(weights, cells, edge, k)))
        chosen[cells][edge] = kept
        weights = only_op(weights, cells, edge, kept)
        tune(weights)
    genes = {}
    for cells in groups:
        gene = []
        for node in range(nodes):
            edges = [e for e, (n, _) in enumerate(inputs) if n == node]
            ranked = sorted(edges, key=lambda e: score(without_edge(weights, cells, e)))[:2]
            gene += [(ops[chosen[cells][e]], inputs[e][1]) for e in sorted(ranked)]
        genes.update(dict.fromkeys(cells, tuple(gene)))
    concat = tuple(range(2, nodes + 2))
    return Genotype(genes["normal"], concat, genes["reduce"], concat)


def genotype_mixture(genotype: Genotype, ops: tuple[str, ...], nodes: int, like: CellWeights) -> CellWeights:
    """The mixture that runs `genotype` alone in the search network: one-hot on its edges, zero elsewhere
    (shaped, typed and placed as `like`)."""
    out = detached(like)
    for cell in CELL_TYPES:
        out.ops[cell].zero_()
        for i, (op, state) in enumerate(genotype.edges(cell)):
            out.ops[cell][edge_index(i // 2, state), ops.index(op)] = 1.0
        if out.edges[cell] is not None:
            out.edges[cell].fill_(1.0)
    return out


def best_sampled(
    genotypes: list[Genotype],
    ops: tuple[str, ...],
    nodes: int,
    like: CellWeights,
    score: Callable[[CellWeights], Score],
) -> Genotype:
    """RSPS's pick: the best of `genotypes` (random ones), each scored with the search network's weights."""
    return max(genotypes, key=lambda g: score(genotype_mixture(g, ops, nodes, like)))
