"""The DARTS search network: every edge of a cell is a mixed op, `sum_o w_o * op_o(x)`.

A cell is one flat list of edges: node i reads every earlier state (the two cell inputs and
nodes 0..i-1), so edge indices run node by node (2 + 3 + 4 + 5 = 14 edges for 4 nodes).
Normal cells share one weight matrix [edges x ops], reduction cells another.

Partial channel connections (PC-DARTS, `partial=K`) run the ops on the first C/K channels
only, pass the rest through (max-pooled at stride 2) and shuffle the channels afterwards;
edge normalisation then weighs each node's inputs by a softmax over its edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BlockConfig, build_block
from ..blocks.common import ChannelShuffle
from ..nets import CellStem, cell_preprocess
from ..spaces import CellShape, CellSpaceSpec
from ..spaces.genotype import CELL_TYPES
from .recomputation import mixture

SEARCH_CONFIG = BlockConfig(bn_affine=False)


def edge_inputs(nodes: int) -> list[tuple[int, int]]:
    """(node, input state) of every edge of a cell, in edge order."""
    return [(node, state) for node in range(nodes) for state in range(node + 2)]


def edge_index(node: int, state: int) -> int:
    """The position in `edge_inputs` of the edge from `state` into `node`."""
    return sum(i + 2 for i in range(node)) + state


class MixedEdge(nn.Module):
    """All candidate ops of one edge; `forward(x, w)` is their w-weighted sum (`none` adds nothing)."""

    def __init__(self, ops: tuple[str, ...], channels: int, stride: int, partial: int = 1) -> None:
        super().__init__()
        width = channels // partial
        self.partial, self.stride = partial, stride
        self.skip_none = [op == "none" for op in ops]
        self.ops = nn.ModuleList(
            nn.Sequential(build_block(op, width, width, stride, SEARCH_CONFIG), nn.BatchNorm2d(width, affine=False))
            if "pool" in op
            else build_block(op, width, width, stride, SEARCH_CONFIG)
            for op in ops
        )
        self.shuffle = ChannelShuffle(partial) if partial > 1 else nn.Identity()

    def mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The w-weighted sum of the ops on `x` (`none` adds nothing)."""
        return sum(w * op(x) for w, op, none in zip(weights, self.ops, self.skip_none, strict=True) if not none)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        part = x[:, : x.shape[1] // self.partial] if self.partial > 1 else x
        mixed = mixture(self, self.mix, part, weights)
        if self.partial == 1:
            return mixed
        rest = x[:, x.shape[1] // self.partial :]
        rest = F.max_pool2d(rest, 2, 2, ceil_mode=True) if self.stride == 2 else rest
        return self.shuffle(torch.cat((mixed, rest), 1))


class SearchCell(nn.Module):
    def __init__(self, shape: CellShape, ops: tuple[str, ...], nodes: int, partial: int) -> None:
        super().__init__()
        self.reduction = shape.reduction
        self.preprocess0, self.preprocess1 = cell_preprocess(shape, SEARCH_CONFIG)
        self.inputs = edge_inputs(nodes)
        self.edges = nn.ModuleList(
            MixedEdge(ops, shape.channels, shape.edge_stride(state), partial) for _, state in self.inputs
        )

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, edge_weights: torch.Tensor | None
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        nodes: list[torch.Tensor] = []
        for e, (node, state) in enumerate(self.inputs):
            h = self.edges[e](states[state], weights[e])
            if edge_weights is not None:
                h = edge_weights[e] * h
            if state == 0:
                nodes.append(h)
            else:
                nodes[node] = nodes[node] + h
            if state == node + 1:
                states.append(nodes[node])
        return torch.cat(states[2:], 1)


@dataclass
class CellWeights:
    """Per cell type: op weights [edges x ops], and edge weights [edges] under edge normalisation."""

    ops: dict[str, torch.Tensor]
    edges: dict[str, torch.Tensor | None]


class CellSupernet(nn.Module):
    """stem -> search cells -> pool -> linear; `forward(x, weights)` mixes every edge by `weights`."""

    def __init__(self, space: CellSpaceSpec, partial: int = 1) -> None:
        super().__init__()
        self.space = space
        self.stem = CellStem(space.stem, space.knobs["init_channels"], BlockConfig())
        self.cells = nn.ModuleList(SearchCell(s, space.ops, space.nodes, partial) for s in space.cells)
        last = space.cells[-1]
        self.classifier = nn.Linear(last.multiplier * last.channels, space.num_classes)

    def forward(self, x: torch.Tensor, weights: CellWeights) -> torch.Tensor:
        s0, s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights.ops[kind], weights.edges[kind])
        return self.classifier(s1.mean((2, 3)))


class CellArchParams(nn.Module):
    """α: [edges x ops] logits for normal and reduction cells (1e-3 · N(0, 1) at the start, as DARTS);
    with edge normalisation also β: [edges] logits, soft-maxed over each node's inputs."""

    def __init__(self, space: CellSpaceSpec, edge_norm: bool = False) -> None:
        super().__init__()
        self.ops = space.ops
        self.nodes = space.nodes
        self.inputs = edge_inputs(space.nodes)
        edges = len(self.inputs)
        self.alpha = nn.ParameterDict({t: nn.Parameter(1e-3 * torch.randn(edges, len(self.ops))) for t in CELL_TYPES})
        self.beta = (
            nn.ParameterDict({t: nn.Parameter(1e-3 * torch.randn(edges)) for t in CELL_TYPES}) if edge_norm else None
        )

    def op_probs(self) -> dict[str, torch.Tensor]:
        return {t: F.softmax(a, -1) for t, a in self.alpha.items()}

    def edge_probs(self) -> dict[str, torch.Tensor | None]:
        """softmax(β) over each node's incoming edges (None without edge normalisation)."""
        if self.beta is None:
            return {t: None for t in CELL_TYPES}
        out = {}
        for t, b in self.beta.items():
            parts, start = [], 0
            for node in range(self.nodes):
                parts.append(F.softmax(b[start : start + node + 2], -1))
                start += node + 2
            out[t] = torch.cat(parts)
        return out

    def weights(self) -> CellWeights:
        return CellWeights(self.op_probs(), self.edge_probs())

    def strengths(self) -> dict[str, torch.Tensor]:
        """What derivation ranks: softmax(α), times softmax(β) per edge under edge normalisation."""
        with torch.no_grad():
            probs, edges = self.op_probs(), self.edge_probs()
            return {t: (p * edges[t][:, None] if edges[t] is not None else p).detach().cpu() for t, p in probs.items()}

    def entropy(self) -> dict[str, list[float]]:
        """Per edge, the entropy of softmax(α) (nats; log(ops) is uniform, 0 is decided)."""
        with torch.no_grad():
            return {t: (-(p * p.clamp_min(1e-12).log()).sum(-1)).cpu().tolist() for t, p in self.op_probs().items()}
