"""ShuffleNetV2 blocks as SPOS uses them: `shuffle_k{3,5,7}` and `shuffle_xception`.

Stride 1: the input's even channels pass through, the odd ones go through the branch,
and both are concatenated (the split is the shuffle of the previous block's output).
Stride 2: a depthwise+pointwise projection branch replaces the pass-through.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .common import BlockConfig, ConvBNAct
from .family import OpFamily, Params


def _branch(
    c_in: int, mid: int, c_out: int, kernel: int, stride: int, xception: bool, cfg: BlockConfig
) -> nn.Sequential:
    if xception:
        return nn.Sequential(
            ConvBNAct(c_in, c_in, 3, stride, cfg, groups=c_in, act=False),
            ConvBNAct(c_in, mid, 1, 1, cfg),
            ConvBNAct(mid, mid, 3, 1, cfg, groups=mid, act=False),
            ConvBNAct(mid, mid, 1, 1, cfg),
            ConvBNAct(mid, mid, 3, 1, cfg, groups=mid, act=False),
            ConvBNAct(mid, c_out, 1, 1, cfg),
        )
    return nn.Sequential(
        ConvBNAct(c_in, mid, 1, 1, cfg),
        ConvBNAct(mid, mid, kernel, stride, cfg, groups=mid, act=False),
        ConvBNAct(mid, c_out, 1, 1, cfg),
    )


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 unit with a KxK (or Xception-style 3x 3x3) main branch."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, xception: bool, cfg: BlockConfig) -> None:
        super().__init__()
        self.stride = stride
        branch_in = c_in if stride == 2 else c_in // 2
        self.main = _branch(branch_in, c_out // 2, c_out - branch_in, kernel, stride, xception, cfg)
        self.proj = (
            nn.Sequential(
                ConvBNAct(c_in, c_in, kernel, stride, cfg, groups=c_in, act=False),
                ConvBNAct(c_in, c_in, 1, 1, cfg),
            )
            if stride == 2
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            return torch.cat((self.proj(x), self.main(x)), 1)
        return torch.cat((x[:, 0::2], self.main(x[:, 1::2])), 1)


def _parse(groups: dict[str, str | None]) -> Params:
    kind = groups["kind"] or ""
    return {"kernel": 3 if kind == "xception" else int(kind[1:]), "xception": kind == "xception"}


def _check(params: Params, c_in: int, c_out: int, stride: int) -> str | None:
    if stride not in (1, 2):
        return f"stride {stride} is not 1 or 2"
    if stride == 1 and (c_in != c_out or c_in % 2):
        return f"at stride 1 it needs equal, even input and output channels, got {c_in} -> {c_out}"
    if stride == 2 and c_out <= c_in:
        return f"at stride 2 it needs more output than input channels, got {c_in} -> {c_out}"
    return None


def _build(p: Params, c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> ShuffleBlock:
    return ShuffleBlock(c_in, c_out, stride, p["kernel"], p["xception"], cfg)


NAMES = re.compile(r"shuffle_(?P<kind>k3|k5|k7|xception)")
FAMILY = OpFamily("shufflenet", "shuffle_k3, shuffle_k5, shuffle_k7, shuffle_xception", NAMES, _build, _parse, _check)
