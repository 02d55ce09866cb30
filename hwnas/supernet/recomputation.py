"""Recomputed soft mixtures: a layer's candidate activations computed again in the backward pass, not kept.

A soft DNAS or DARTS step keeps, for the backward pass, the activations of every candidate of every
layer: that is what makes soft supernets run out of memory. Within `recompute(True)` each mixed layer
(DNAS's `ChoiceLayer`, DARTS's `MixedEdge`) runs under `torch.utils.checkpoint` (non-reentrant): only its
input and mixing weights are kept, and its candidates run again during the backward pass, one layer at
a time. Gradients are the same; the forward runs twice. BatchNorm running statistics are updated once
per step, as without recomputation: the backward's second run puts back the statistics it changed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .switch import Switch

# `with recompute(True):` soft mixtures in training recompute their candidates in the backward pass
recompute = Switch()


def mixture(
    owner: nn.Module, mix: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    """`mix(x, w)`, recomputed in the backward pass when enabled, `owner` trains and autograd records."""
    if not (recompute.enabled and owner.training and torch.is_grad_enabled()):
        return mix(x, w)
    buffers = [b for b in owner.buffers() if b is not None]
    calls = 0

    def run(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 1:
            return mix(x, w)
        saved = [b.clone() for b in buffers]
        try:
            return mix(x, w)
        finally:
            with torch.no_grad():
                for b, s in zip(buffers, saved, strict=True):
                    b.copy_(s)

    return checkpoint(run, x, w, use_reentrant=False)
