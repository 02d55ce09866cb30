"""The losses of the training engine's classification heads (their cosine classifier is `nets.heads`).

- `softmax`: cross-entropy over a linear classifier.
- `am_softmax` (Wang et al. 2018) and `arcface` (Deng et al. 2019): the network ends in a cosine
  classifier (L2-normalised embedding · L2-normalised class weights = cos θ), and the loss puts a
  margin on the true class before scaling by s: AM-Softmax s·(cos θ − m), s = 30, m = 0.35;
  ArcFace s·cos(θ + m), s = 64, m = 0.5 (where θ + m would pass π, cos θ − m·sin m instead, so the
  target logit keeps decreasing in θ).
"""

from __future__ import annotations

import math

import torch

from ..choices import HEADS

MARGIN_DEFAULTS = {"am_softmax": (30.0, 0.35), "arcface": (64.0, 0.5)}


def margin_settings(head: str, scale: float | None, margin: float | None) -> tuple[float, float]:
    """(s, m) of a margin head: the given values, else the head's defaults."""
    default_scale, default_margin = MARGIN_DEFAULTS[head]
    return (default_scale if scale is None else scale, default_margin if margin is None else margin)


def margin_logits(cosine: torch.Tensor, labels: torch.Tensor, head: str, scale: float, margin: float) -> torch.Tensor:
    """The logits the loss sees: s·cos θ, with the head's margin on each sample's true class."""
    if head not in HEADS or head == "softmax":
        raise ValueError(f"head {head!r}: expected one of {', '.join(h for h in HEADS if h != 'softmax')}")
    cosine = cosine.float()
    target = cosine.gather(1, labels[:, None])
    if head == "am_softmax":
        moved = target - margin
    else:
        sine = (1 - target.pow(2)).clamp_min(0).sqrt()
        shifted = target * math.cos(margin) - sine * math.sin(margin)
        moved = torch.where(target > math.cos(math.pi - margin), shifted, target - margin * math.sin(margin))
    return scale * cosine.scatter(1, labels[:, None], moved)
