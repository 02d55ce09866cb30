"""Batched, on-device preprocessing: resize, random crop with padding, flip, normalise, cutout.

Every random choice is drawn per sample and per epoch from the run's seed (`AugmentPlan`),
keyed by the sample's position in its ImageSet. The same sample gets the same crop in
epoch e whichever batch, rank or resumed process it lands in, so interrupted and
distributed runs see exactly the images an uninterrupted single-process run sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import HwnasError
from .imageset import Batch


@dataclass(frozen=True)
class AugmentPlan:
    """Per-sample random parameters of one epoch (CPU tensors of length N)."""

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor
    cy: torch.Tensor
    cx: torch.Tensor


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Float images [B, C, H, W] resized whole to `size` (H, W) as `Preprocess` does: antialiased when they shrink
    in width (bilinear or bicubic)."""
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=x.shape[-1] > size[1])


@dataclass(frozen=True)
class Preprocess:
    """Images of any size and 1 or C channels -> normalised float [B, C, H, W] on `device`.

    uint8 images (0..255) are scaled to [0, 1] first; float images are taken as already in [0, 1]."""

    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    flip: bool = False
    cutout_length: int = 0

    def plan(self, n: int, seed: int, epoch: int) -> AugmentPlan:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        _, h, w = self.shape
        span = 2 * self.crop_padding + 1
        return AugmentPlan(
            dy=torch.randint(0, span, (n,), generator=g),
            dx=torch.randint(0, span, (n,), generator=g),
            flip=torch.rand(n, generator=g) < 0.5,
            cy=torch.randint(0, h, (n,), generator=g),
            cx=torch.randint(0, w, (n,), generator=g),
        )

    def __call__(self, batch: Batch, device: torch.device, plan: AugmentPlan | None = None) -> torch.Tensor:
        c, h, w = self.shape
        x = batch.images.to(device, non_blocking=True)
        x = x.float() if x.is_floating_point() else x.float().div_(255)
        if x.shape[1] != c:
            if x.shape[1] != 1:
                raise HwnasError(f"images have {x.shape[1]} channels, the network expects {c} (or 1, repeated)")
            x = x.expand(-1, c, -1, -1)
        if x.shape[-2:] != (h, w):
            x = resize(x, (h, w))
        if plan is not None:
            x = self._augment(x, plan, batch.positions)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        x = (x - mean) / std
        if plan is not None and self.cutout_length:
            x = self._cutout(x, plan, batch.positions)
        return x

    def _augment(self, x: torch.Tensor, plan: AugmentPlan, pos: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        dev = x.device
        if self.crop_padding:
            p = self.crop_padding
            padded = F.pad(x, (p, p, p, p))
            rows = (plan.dy[pos].to(dev)[:, None] + torch.arange(h, device=dev))[:, None, :, None]
            cols = (plan.dx[pos].to(dev)[:, None] + torch.arange(w, device=dev))[:, None, None, :]
            x = padded[
                torch.arange(b, device=dev)[:, None, None, None],
                torch.arange(c, device=dev)[None, :, None, None],
                rows,
                cols,
            ]
        if self.flip:
            flip = plan.flip[pos].to(dev)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def _cutout(self, x: torch.Tensor, plan: AugmentPlan, pos: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        dev = x.device
        half = self.cutout_length // 2
        cy, cx = plan.cy[pos].to(dev)[:, None], plan.cx[pos].to(dev)[:, None]
        ys, xs = torch.arange(h, device=dev)[None], torch.arange(w, device=dev)[None]
        in_rows = (ys >= cy - half) & (ys < cy - half + self.cutout_length)
        in_cols = (xs >= cx - half) & (xs < cx - half + self.cutout_length)
        hole = in_rows[:, :, None] & in_cols[:, None, :]
        return x.masked_fill(hole[:, None], 0.0)
