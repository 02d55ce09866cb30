"""Classifier modules of the networks: linear or cosine (AM-Softmax, ArcFace heads), or none."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import HwnasError


class CosineClassifier(nn.Module):
    """cos θ between the L2-normalised input and each L2-normalised class weight (no bias)."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, features))
        nn.init.normal_(self.weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def build_classifier(features: int, num_classes: int, *, cosine: bool, bias: bool = True) -> nn.Module:
    """A linear (or cosine) classifier of `num_classes` on `features` inputs; with 0 classes an identity, as timm's."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise HwnasError(f"num_classes: got {num_classes!r}, expected an integer >= 0 (0: no classifier)")
    if num_classes == 0:
        return nn.Identity()
    return CosineClassifier(features, num_classes) if cosine else nn.Linear(features, num_classes, bias=bias)
