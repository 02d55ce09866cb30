"""`ChoiceLayer`: every candidate op of one searchable layer, built through the registry."""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import BlockConfig, build_block
from ..spaces import SearchLayer


class ChoiceLayer(nn.Module):
    """Holds one module per candidate; `forward(x, index)` runs the chosen one."""

    def __init__(self, layer: SearchLayer, cfg: BlockConfig) -> None:
        super().__init__()
        self.ops = layer.candidates
        self.candidates = nn.ModuleList(build_block(op, layer.c_in, layer.c_out, layer.stride, cfg) for op in self.ops)

    def forward(self, x: torch.Tensor, index: int) -> torch.Tensor:
        return self.candidates[index](x)
