"""Classifier modules of the networks: the cosine classifier of face models (AM-Softmax, ArcFace heads)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineClassifier(nn.Module):
    """cos θ between the L2-normalised input and each L2-normalised class weight (no bias)."""

    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, features))
        nn.init.normal_(self.weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))
