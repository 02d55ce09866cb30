"""`build_model(arch)`: the plain `nn.Module` of an architecture, with no NAS machinery in it."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING

import torch
from torch import nn

from .blocks import build_block
from .errors import HwnasError
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


def init_weights(module: nn.Module) -> None:
    """The usual init of mobile networks (as torchvision's MobileNetV2): He-normal (fan-out) convs,
    unit-scale BatchNorm, small-normal classifier, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


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
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def build_model(arch: Architecture | str) -> nn.Module:
    """Build the network an architecture file (or zoo name, or `Architecture`) describes."""
    from .arch import resolve_arch

    arch = resolve_arch(arch)
    if arch.genotype is not None:
        from .cellnet import CellNet

        return CellNet(arch.spec, arch.genotype)
    return LayerwiseNet(arch.spec, list(arch.choices))


def load_weights(model: nn.Module, weights: str | os.PathLike[str]) -> None:
    """Load a state dict, or a checkpoint holding one under 'model', strictly into `model`."""
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise HwnasError(f"weights {weights}: cannot load ({str(exc).splitlines()[0]})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise HwnasError(f"weights {weights}: do not fit this architecture ({first})") from None
