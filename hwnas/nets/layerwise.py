"""`LayerwiseNet`: stem, one block per searchable layer, head: the stand-alone form of every layer-wise space."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BlockConfig, build_block
from ..blocks.common import batch_norm
from ..spaces import SearchLayer, SpaceSpec
from .backbone import Backbone, chosen_pool, pool_features, stage_ends
from .heads import build_classifier


class ClassifierHead(nn.Module):
    """Optional last conv, global average pool, dropout, linear (or cosine) classifier."""

    def __init__(self, space: SpaceSpec) -> None:
        super().__init__()
        head = space.head
        self.conv = (
            build_block(head.op, head.c_in, head.channels, 1, space.block_config) if head.channels else nn.Identity()
        )
        self.num_features = head.channels or head.c_in
        self.cosine, self.classifier_bias = head.cosine, head.bias
        self.global_pool = "avg"
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = build_classifier(self.num_features, head.num_classes, cosine=head.cosine, bias=head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the classifier reads (the embedding of face models)."""
        return pool_features(self.conv(x), self.global_pool)

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """Dropout and the classifier on pooled features."""
        return self.classifier(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))

    def reset(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier of the same kind for `num_classes` (0: none, the pooled features pass through), and
        the pooling `global_pool` names (`backbone.chosen_pool`)."""
        classifier = build_classifier(self.num_features, num_classes, cosine=self.cosine, bias=self.classifier_bias)
        self.global_pool = chosen_pool(global_pool, self.global_pool, num_classes)
        self.classifier = classifier
        init_weights(self.classifier)


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


class LayerwiseNet(nn.Module, Backbone):
    """stem -> one block per searchable layer -> head; the standalone form of every layer-wise space.

    Follows timm's model interface: `forward_features` (the map before pooling, after the head's last
    conv), `forward_head`, `reset_classifier`, `get_classifier`, `num_classes`, `num_features`, and
    `feature_info` (the last module of each stride stage) with `forward_intermediates`."""

    def __init__(self, space: SpaceSpec, choices: list[str]) -> None:
        super().__init__()
        self.stem = build_stem(space)
        self.layers = nn.Sequential(
            *(build_layer(op, layer, space.block_config) for op, layer in zip(choices, space.layers, strict=True))
        )
        self.head = ClassifierHead(space)
        self.num_classes = space.head.num_classes
        self.num_features = self.head.num_features
        self.feature_info = stage_ends(
            [(f"stem.{i}", s.c_out, s.stride) for i, s in enumerate(space.stem)]
            + [(f"layers.{i}", layer.c_out, layer.stride) for i, layer in enumerate(space.layers)]
        )
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.conv(self.layers(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global pooling, then dropout and the classifier; with `pre_logits`, the pooled features."""
        pooled = pool_features(x, self.head.global_pool)
        return pooled if pre_logits else self.head.logits(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`forward_head(forward_features(x))`, run through `head` as one module (profiling hooks it as a unit)."""
        return self.head(self.layers(self.stem(x)))

    def get_classifier(self) -> nn.Module:
        return self.head.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new classifier for `num_classes`; 0 removes it, so `forward` returns the pooled features. As timm's,
        `global_pool` "avg" averages, "" does not pool (with 0 classes `forward` returns the feature map), None
        keeps the current pooling; others are refused."""
        self.head.reset(num_classes, global_pool)
        self.num_classes = num_classes

    def steps(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Each stem module's and searchable layer's output, by module name (`stem.i`, `layers.i`)."""
        for i, module in enumerate(self.stem):
            x = module(x)
            yield f"stem.{i}", x
        for i, module in enumerate(self.layers):
            x = module(x)
            yield f"layers.{i}", x

    def after_steps(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.conv(x)

    def drop_after(self, name: str, channels: int) -> None:
        """Keep the steps up to `name`; drop the later ones and the head (its conv and classifier)."""
        part, index = name.split(".")
        if part == "stem":
            self.stem, self.layers = self.stem[: int(index) + 1], nn.Sequential()
        else:
            self.layers = self.layers[: int(index) + 1]
        self.head.conv = nn.Identity()
        self.head.num_features = self.num_features = channels
        self.reset_classifier(0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised embedding before the classifier (face verification compares these)."""
        return F.normalize(self.forward_head(self.forward_features(x), pre_logits=True), dim=1)
