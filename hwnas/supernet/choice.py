"""`ChoiceLayer`: every candidate op of one searchable layer, built through the registry.

A layer's choice is one of:
- an index `i`: run candidate i alone (a sampled path);
- a pair `(i, scale)`: run candidate i alone and multiply by `scale`, a scalar that carries the
  straight-through gradient of hard Gumbel sampling to the architecture parameters;
- a weight vector `w` (one entry per candidate): the mixed op `sum_i w_i * op_i(x)`, skipping
  candidates whose weight is exactly zero. Within `fusion(True)` the plain inverted-residual candidates
  run fused (`fused`); by default every candidate runs on its own, the reference the fused path equals.
  Within `recompute(True)` the mixture's activations are computed again in the backward pass (`recompute`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import BlockConfig
from ..nets import build_layer
from ..spaces import SearchLayer
from .fused import fusion, mixed_output
from .recomputation import mixture

Choice = int | tuple[int, torch.Tensor] | torch.Tensor


class ChoiceLayer(nn.Module):
    """Holds one module per candidate; `forward(x, choice)` runs a path or mixes candidates."""

    def __init__(self, layer: SearchLayer, cfg: BlockConfig) -> None:
        super().__init__()
        self.ops = layer.candidates
        self.candidates = nn.ModuleList(build_layer(op, layer, cfg) for op in self.ops)

    def forward(self, x: torch.Tensor, choice: Choice) -> torch.Tensor:
        if isinstance(choice, int):
            return self.candidates[choice](x)
        if isinstance(choice, tuple):
            index, scale = choice
            return scale * self.candidates[index](x)
        return mixture(self, self.mix, x, choice)

    def mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`sum_i weights[i] * candidates[i](x)` over the nonzero weights."""
        if fusion.enabled:
            return mixed_output(self.candidates, x, weights, self.training)
        return sum(w * op(x) for w, op in zip(weights, self.candidates, strict=True) if not w.eq(0).item())
