"""`build_model(arch)`: the plain `nn.Module` of an architecture, with no NAS machinery in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .blocks import build_block
from .spaces import SpaceSpec

if TYPE_CHECKING:
    from .arch import Architecture


class ClassifierHead(nn.Module):
    """Optional last conv, global average pool, dropout, linear classifier."""

    def __init__(self, space: SpaceSpec) -> None:
        super().__init__()
        head = space.head
        self.conv = (
            build_block(head.op, head.c_in, head.channels, 1, space.block_config) if head.channels else nn.Identity()
        )
        features = head.channels or head.c_in
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(features, head.num_classes, bias=head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).mean((2, 3))
        return self.classifier(self.dropout(x))


def build_stem(space: SpaceSpec) -> nn.Sequential:
    return nn.Sequential(*(build_block(s.op, s.c_in, s.c_out, s.stride, space.block_config) for s in space.stem))


class LayerwiseNet(nn.Module):
    """stem -> one block per searchable layer -> head; the standalone form of every layer-wise space."""

    def __init__(self, space: SpaceSpec, choices: list[str]) -> None:
        super().__init__()
        self.stem = build_stem(space)
        self.layers = nn.Sequential(
            *(
                build_block(op, layer.c_in, layer.c_out, layer.stride, space.block_config)
                for op, layer in zip(choices, space.layers, strict=True)
            )
        )
        self.head = ClassifierHead(space)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def build_model(arch: Architecture | str) -> nn.Module:
    """Build the network an architecture file (or zoo name, or `Architecture`) describes."""
    from .arch import resolve_arch

    arch = resolve_arch(arch)
    return LayerwiseNet(arch.spec, list(arch.choices))
