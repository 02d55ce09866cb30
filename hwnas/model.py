"""`build_model(arch)`: the plain `nn.Module` of an architecture, with no NAS machinery in it."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BlockConfig, build_block
from .blocks.common import batch_norm
from .errors import HwnasError
from .spaces import SearchLayer, SpaceSpec
from .train.heads import CosineClassifier

if TYPE_CHECKING:
    from .arch import Architecture


class ClassifierHead(nn.Module):
    """Optional last conv, global average pool, dropout, linear (or cosine) classifier."""

    def __init__(self, space: SpaceSpec) -> None:
        super().__init__()
        head = space.head
        self.conv = (
            build_block(head.op, head.c_in, head.channels, 1, space.block_config) if head.channels else nn.Identity()
        )
        features = head.channels or head.c_in
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = (
            CosineClassifier(features, head.num_classes)
            if head.cosine
            else nn.Linear(features, head.num_classes, bias=head.bias)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier reads (the embedding of face models)."""
        return self.conv(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


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


def build_layer(op: str, layer: SearchLayer, cfg: BlockConfig) -> nn.Module:
    """The block `op` at a searchable layer; in a space with `norm: outside`, followed by its own BatchNorm."""
    block = build_block(op, layer.c_in, layer.c_out, layer.stride, cfg)
    return block if cfg.norm_inside else nn.Sequential(block, batch_norm(layer.c_out, cfg))


def build_stem(space: SpaceSpec) -> nn.Sequential:
    return nn.Sequential(*(build_block(s.op, s.c_in, s.c_out, s.stride, space.block_config) for s in space.stem))


class LayerwiseNet(nn.Module):
    """stem -> one block per searchable layer -> head; the standalone form of every layer-wise space."""

    def __init__(self, space: SpaceSpec, choices: list[str]) -> None:
        super().__init__()
        self.stem = build_stem(space)
        self.layers = nn.Sequential(
            *(build_layer(op, layer, space.block_config) for op, layer in zip(choices, space.layers, strict=True))
        )
        self.head = ClassifierHead(space)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised embedding before the classifier (face verification compares these)."""
        return F.normalize(self.head.features(self.layers(self.stem(x))), dim=1)


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
