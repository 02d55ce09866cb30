"""The DARTS search network: every edge of a cell is a mixed op, `sum_o w_o * op_o(x)`.

A cell is one flat list of edges: node i reads every earlier state (the two cell inputs and
nodes 0..i-1), so edge indices run node by node (2 + 3 + 4 + 5 = 14 edges for 4 nodes).
Normal cells share one weight matrix [edges x ops], reduction cells another.

Partial channel connections (PC-DARTS, `partial=K`) run the ops on the first C/K channels
only, pass the rest through (max-pooled at stride 2) and shuffle the channels afterwards;
edge normalisation then weighs each node's inputs by a softmax over its edges.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BlockConfig, build_block
from ..blocks.common import ChannelShuffle
from ..choices import ALPHA_MODES
from ..nets import CellStem, cell_preprocess
from ..spaces import CellShape, CellSpaceSpec
from ..spaces.genotype import CELL_TYPES
from .recomputation import mixture

SEARCH_CONFIG = BlockConfig(bn_affine=False)
Running = list[int] | None  # the ops of an edge that run (None: all)


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

    def mix(self, x: torch.Tensor, weights: torch.Tensor, running: Running = None) -> torch.Tensor:
        """The w-weighted sum of the ops on `x` (`none` adds nothing); with `running`, of those ops only (the
        others weigh exactly 0), zeros when there are none."""
        ops = range(len(self.ops)) if running is None else running
        terms = [weights[k] * self.ops[k](x) for k in ops if not self.skip_none[k]]
        if terms:
            return sum(terms[1:], terms[0])
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, running: Running = None) -> torch.Tensor:
        part = x[:, : x.shape[1] // self.partial] if self.partial > 1 else x
        mixed = mixture(self, functools.partial(self.mix, running=running), part, weights)
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
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
        running: list[Running] | None = None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        nodes: list[torch.Tensor] = []
        for e, (node, state) in enumerate(self.inputs):
            h = self.edges[e](states[state], weights[e], None if running is None else running[e])
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
    zeros: bool = False  # some op weights may be exactly 0 (an edited or one-hot mixture): see `running_ops`


def running_ops(weights: CellWeights) -> dict[str, list[Running]] | None:
    """Per cell type and edge, the ops whose weight is not exactly 0, when no gradient flows to the weights (a
    one-hot or partly zeroed mixture: RSPS's genotypes, DARTS-PT's decided edges run their ops only); None when
    one does, as α's step needs every op's output, or when `weights` has no zeros to skip."""
    if not weights.zeros or any(w.requires_grad for w in weights.ops.values()):
        return None  # α's own mixtures: every op runs, and nothing is read back from the device
    return {t: [[k for k, v in enumerate(row) if v != 0] for row in w.tolist()] for t, w in weights.ops.items()}


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
        running = running_ops(weights)
        s0, s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights.ops[kind], weights.edges[kind], running and running[kind])
        return self.classifier(s1.mean((2, 3)))


FIXED_MODES = ("uniform", "random")  # modes whose α is never trained
DIRICHLET_ANCHOR = 1e-3  # DrNAS: the scale of the KL from the Dirichlet of α to the uniform Dirichlet(1)


class CellArchParams(nn.Module):
    """α: [edges x ops] logits for normal and reduction cells (1e-3 · N(0, 1) at the start, as DARTS);
    with edge normalisation also β: [edges] logits, soft-maxed over each node's inputs.

    `mode` is how α mixes each edge's ops: softmax(α) (DARTS); a draw from Dirichlet(elu(α) + 1) at every
    forward of the search, reparameterised so α learns through it (DrNAS), its mean weighing the ops wherever one
    mixture is needed (evaluation, the expected cost, derivation); or `uniform` and `random`, every op and input
    edge weighed alike whatever α holds (a network trained without α: as a whole for DARTS-PT's selection, or one
    random genotype a step for RSPS, which the trainer draws)."""

    def __init__(self, space: CellSpaceSpec, edge_norm: bool = False, mode: str = "softmax") -> None:
        super().__init__()
        if mode not in ALPHA_MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(ALPHA_MODES)}")
        self.mode = mode
        self.ops = space.ops
        self.nodes = space.nodes
        self.inputs = edge_inputs(space.nodes)
        edges = len(self.inputs)
        alpha = nn.Parameter(1e-3 * torch.randn(edges, len(self.ops)))
        shared = space.shared_cells  # one α (and β) for both cell types: the same Parameter under both names
        self.alpha = nn.ParameterDict(
            {"normal": alpha, "reduce": alpha if shared else nn.Parameter(1e-3 * torch.randn(edges, len(self.ops)))}
        )
        self.beta = None
        if edge_norm:
            beta = nn.Parameter(1e-3 * torch.randn(edges))
            self.beta = nn.ParameterDict(
                {"normal": beta, "reduce": beta if shared else nn.Parameter(1e-3 * torch.randn(edges))}
            )

    def concentration(self) -> dict[str, torch.Tensor]:
        """DrNAS's Dirichlet concentration of each edge, elu(α) + 1 (positive; 1 everywhere is uniform)."""
        return {t: F.elu(a) + 1 for t, a in self.alpha.items()}

    def op_probs(self) -> dict[str, torch.Tensor]:
        """Each edge's mixture of ops: softmax(α), or under `dirichlet` the Dirichlet's mean."""
        if self.mode == "dirichlet":
            return {t: c / c.sum(-1, keepdim=True) for t, c in self.concentration().items()}
        if self.mode in FIXED_MODES:
            return {t: torch.full_like(a, 1 / a.shape[-1]) for t, a in self.alpha.items()}
        return {t: F.softmax(a, -1) for t, a in self.alpha.items()}

    def sampled_probs(self) -> dict[str, torch.Tensor]:
        """The mixture a search step runs: `op_probs`, or under `dirichlet` a reparameterised draw."""
        if self.mode == "dirichlet":
            return {t: torch.distributions.Dirichlet(c).rsample() for t, c in self.concentration().items()}
        return self.op_probs()

    def dirichlet_anchor(self) -> torch.Tensor:
        """DrNAS's anchor: `DIRICHLET_ANCHOR` times the KL from each edge's Dirichlet to Dirichlet(1), summed."""
        kl = []
        for c in self.concentration().values():
            prior = torch.distributions.Dirichlet(torch.ones_like(c))
            kl.append(torch.distributions.kl_divergence(torch.distributions.Dirichlet(c), prior).sum())
        return DIRICHLET_ANCHOR * torch.stack(kl).sum()

    def edge_probs(self) -> dict[str, torch.Tensor | None]:
        """softmax(β) over each node's incoming edges (None without edge normalisation)."""
        if self.beta is None:
            return {t: None for t in CELL_TYPES}
        out = {}
        for t, b in self.beta.items():
            b = torch.zeros_like(b) if self.mode in FIXED_MODES else b
            parts, start = [], 0
            for node in range(self.nodes):
                parts.append(F.softmax(b[start : start + node + 2], -1))
                start += node + 2
            out[t] = torch.cat(parts)
        return out

    def weights(self) -> CellWeights:
        """The mixture of a search step (a fresh Dirichlet draw under `dirichlet`)."""
        return CellWeights(self.sampled_probs(), self.edge_probs())

    def mean_weights(self) -> CellWeights:
        """The one mixture that stands for α: what evaluation runs."""
        return CellWeights(self.op_probs(), self.edge_probs())

    def strengths(self) -> dict[str, torch.Tensor]:
        """What derivation ranks: softmax(α), times softmax(β) per edge under edge normalisation."""
        with torch.no_grad():
            probs, edges = self.op_probs(), self.edge_probs()
            return {t: (p * edges[t][:, None] if edges[t] is not None else p).detach().cpu() for t, p in probs.items()}

    def beta_decay(self) -> torch.Tensor:
        """β-DARTS's Beta-Decay term: the mean over every edge of both cells of logsumexp(α); its gradient,
        softmax(α), pulls the strongest ops' logits down hardest, which keeps α from running away."""
        return torch.cat([torch.logsumexp(a, -1) for a in self.alpha.values()]).mean()

    def entropy(self) -> dict[str, list[float]]:
        """Per edge, the entropy of softmax(α) (nats; log(ops) is uniform, 0 is decided)."""
        with torch.no_grad():
            return {t: (-(p * p.clamp_min(1e-12).log()).sum(-1)).cpu().tolist() for t, p in self.op_probs().items()}
