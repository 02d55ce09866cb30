"""`LayerwiseNet`: stem, one block per searchable layer, head: the stand-alone form of every layer-wise space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BlockConfig, build_block
from ..blocks.common import batch_norm
from ..spaces import SearchLayer, SpaceSpec
from .heads import CosineClassifier


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
