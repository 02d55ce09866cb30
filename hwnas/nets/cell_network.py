"""The evaluation network of a genotype (DARTS's NetworkCIFAR / NetworkImageNet, CNAS's stems).

stem -> `layers` cells (each reads the two cells before it) -> global pool -> linear. With
`auxiliary`, an auxiliary classifier reads the second reduction cell; in training mode the
network then returns `AuxiliaryOutputs(logits, aux_logits)`, in eval mode the logits alone,
so an exported model is the plain classifier. Drop-path (`DropPath`, one per cell) zeroes
whole op outputs per sample; its probability is set by the trainer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BlockConfig, DropPath, build_block
from ..blocks.cell_ops import FactorizedReduce, ReLUConvBN
from ..spaces import CellShape, CellSpaceSpec, Genotype
from ..spaces.cell_space import StemShape
from .backbone import Backbone, chosen_pool, pool_features, stage_ends
from .heads import build_classifier


class AuxiliaryOutputs(NamedTuple):
    """What a network with an auxiliary head returns in training mode."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


def _conv_bn(c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out, affine=cfg.bn_affine)]


class CellStem(nn.Module):
    """The stem of a cell network; returns the two states the first cell reads.

    cifar: 3x3 conv (stride 1) to stem_multiplier*C; cnas64: the same at stride 2; cnas128: 3x3 conv to
    half that width, ReLU, 3x3 stride-2 conv; imagenet: DARTS's two-step stem (two stride-2 convs to C,
    then ReLU and a third stride-2 conv), whose first output is the first cell's cell-two-back input.
    """

    def __init__(self, shape: StemShape, init_channels: int, cfg: BlockConfig) -> None:
        super().__init__()
        c_in, wide, c = shape.c_in, shape.c_prev, init_channels
        self.two_step = shape.kind == "imagenet"
        self.first_reduction = {"cifar": 1, "imagenet": 4}.get(shape.kind, 2)  # of `first`'s output
        if shape.kind == "cifar":
            self.first = nn.Sequential(*_conv_bn(c_in, wide, 1, cfg))
        elif shape.kind == "cnas64":
            self.first = nn.Sequential(*_conv_bn(c_in, wide, 2, cfg))
        elif shape.kind == "cnas128":
            self.first = nn.Sequential(
                *_conv_bn(c_in, wide // 2, 1, cfg), nn.ReLU(True), *_conv_bn(wide // 2, wide, 2, cfg)
            )
        else:
            self.first = nn.Sequential(*_conv_bn(c_in, c // 2, 2, cfg), nn.ReLU(True), *_conv_bn(c // 2, c, 2, cfg))
        self.second = nn.Sequential(nn.ReLU(False), *_conv_bn(c, c, 2, cfg)) if self.two_step else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.first(x)
        return s0, self.second(s0)


def cell_preprocess(cell: CellShape, cfg: BlockConfig) -> tuple[nn.Module, nn.Module]:
    """Bring both inputs of a cell to its width and resolution (factorized reduce after a reduction)."""
    c = cell.channels
    pre0 = (
        FactorizedReduce(cell.c_prev_prev, c, cfg)
        if cell.reduction_prev
        else ReLUConvBN(cell.c_prev_prev, c, 1, 1, cfg)
    )
    return pre0, ReLUConvBN(cell.c_prev, c, 1, 1, cfg)


class Cell(nn.Module):
    """One cell of a genotype: preprocess both inputs, each node sums its two ops, concat the chosen nodes."""

    def __init__(self, shape: CellShape, edges: tuple[tuple[str, int], ...], concat: tuple[int, ...], cfg: BlockConfig):
        super().__init__()
        self.preprocess0, self.preprocess1 = cell_preprocess(shape, cfg)
        self.inputs = [state for _, state in edges]
        self.ops = nn.ModuleList(
            build_block(op, shape.channels, shape.channels, shape.edge_stride(state), cfg) for op, state in edges
        )
        self.active = [op != "none" for op, _ in edges]
        self.droppable = [not isinstance(m, nn.Identity) for m in self.ops]
        self.concat = list(concat)
        self.drop_path = DropPath()

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for e in (2 * node, 2 * node + 1):
                if not self.active[e]:
                    continue
                h = self.ops[e](states[self.inputs[e]])
                h = self.drop_path(h) if self.droppable[e] else h
                total = h if total is None else total + h
            states.append(total if total is not None else self.ops[2 * node](states[self.inputs[2 * node]]))
        return torch.cat([states[i] for i in self.concat], 1)


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier on the second reduction cell: ReLU, 5x5 average pool (stride 3 for
    CIFAR-sized maps, 2 for ImageNet), 1x1 conv to 128, 2x2 conv to 768, linear."""

    def __init__(self, channels: int, num_classes: int, pool_stride: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class CellNet(nn.Module, Backbone):
    """The network a genotype describes in a cell space (its knobs give widths, depth, stem, auxiliary).

    Follows timm's model interface: `forward_features` (the last cell's output), `forward_head`,
    `reset_classifier`, `get_classifier`, `num_classes`, `num_features`, and `feature_info` (the last
    cell, or stem part, of each stride stage) with `forward_intermediates`."""

    def __init__(self, space: CellSpaceSpec, genotype: Genotype) -> None:
        super().__init__()
        cfg = space.block_config
        shapes = space.shapes(len(genotype.normal_concat), len(genotype.reduce_concat))
        self.stem = CellStem(space.stem, space.knobs["init_channels"], cfg)
        self.cells = nn.ModuleList(Cell(s, genotype.edges(s.kind), genotype.concat(s.kind), cfg) for s in shapes)
        self.auxiliary_index = space.auxiliary_index
        last = shapes[-1]
        self.auxiliary = (
            AuxiliaryHead(
                shapes[self.auxiliary_index].multiplier * shapes[self.auxiliary_index].channels,
                space.num_classes,
                2 if space.stem.kind == "imagenet" else 3,
            )
            if space.knobs["auxiliary"]
            else None
        )
        self.num_classes = space.num_classes
        self.num_features = last.multiplier * last.channels
        self.cosine = space.knobs["classifier"] == "cosine"
        self.classifier = build_classifier(self.num_features, space.num_classes, cosine=self.cosine)
        self.global_pool = "avg"
        self.feature_info = stage_ends(
            [("stem.first", space.stem.c_prev_prev, self.stem.first_reduction)]
            + ([("stem.second", space.stem.c_prev, 2)] if self.stem.two_step else [])
            + [(f"cells.{s.index}", s.multiplier * s.channels, 2 if s.reduction else 1) for s in shapes]
        )

    def _run_cells(self, x: torch.Tensor, auxiliary: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The last cell's output, and with `auxiliary` the auxiliary head's logits (else None)."""
        s0, s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if auxiliary and i == self.auxiliary_index:
                aux = self.auxiliary(s1)
        return s1, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run_cells(x, False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pooling, then the classifier; with `pre_logits`, the pooled features."""
        pooled = pool_features(x, self.global_pool)
        return pooled if pre_logits else self.classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxiliaryOutputs:
        final, aux = self._run_cells(x, self.training and self.auxiliary is not None)
        logits = self.forward_head(final)
        return AuxiliaryOutputs(logits, aux) if aux is not None else logits

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for `num_classes` (the auxiliary head's too); 0 removes both, so `forward`
        returns the pooled features. `global_pool` as timm's: "avg", "" (no pooling, with 0 classes) or None (keep)."""
        classifier = build_classifier(self.num_features, num_classes, cosine=self.cosine)
        self.global_pool = chosen_pool(global_pool, self.global_pool, num_classes)
        self.classifier = classifier
        if self.auxiliary is not None:
            if num_classes:
                self.auxiliary.classifier = nn.Linear(self.auxiliary.classifier.in_features, num_classes)
            else:
                self.auxiliary = None
        self.num_classes = num_classes

    def steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """The stem's outputs (`stem.first`, and `stem.second` for the two-step stem) and each cell's (`cells.i`)."""
        s0 = self.stem.first(x)
        yield "stem.first", s0
        s1 = self.stem.second(s0)
        if self.stem.two_step:
            yield "stem.second", s1
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            yield f"cells.{i}", s1

    def after_steps(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def drop_after(self, name: str, channels: int) -> None:
        """Keep the steps up to `name`; drop the later ones and the classifiers."""
        part, index = name.split(".")
        if part == "stem" and index == "first":
            self.stem.second, self.stem.two_step = nn.Identity(), False
        self.cells = self.cells[: int(index) + 1] if part == "cells" else nn.ModuleList()
        self.num_features = channels
        self.reset_classifier(0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised pooled features the classifier reads."""
        return F.normalize(self.forward_head(self.forward_features(x), pre_logits=True), dim=1)
