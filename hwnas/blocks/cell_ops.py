"""DARTS and CNAS cell ops: `none`, `skip_connect`, `sep_conv_{3,5}x3`, `dil_conv_{3,5}x5`, `cweight_com`,
`shuffle_conv_3x3` (the pools are `plain.POOL`).

Every cell op maps C channels to C channels at stride 1 or 2. The ops are ReLU-first
(ReLU -> conv -> BN), as in DARTS. `cfg.bn_affine` is False inside the search network
(DARTS's `affine=False`) and True in the evaluation network.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from .common import BlockConfig, ChannelShuffle
from .depthwise import DepthwiseConv2d
from .family import OpFamily, Params


def _bn(channels: int, cfg: BlockConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum, affine=cfg.bn_affine)


class ReLUConvBN(nn.Sequential):
    """ReLU, KxK conv (no bias), BatchNorm: DARTS's cell preprocessing and stem-to-cell adapter."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, cfg: BlockConfig) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, bias=False),
            _bn(c_out, cfg),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1x1 stride-2 convs on offset pixel grids, concatenated.

    The second conv reads the input shifted by one pixel; an odd-sized input is padded
    so that both halves have the same size (DARTS's version fails there).
    """

    def __init__(self, c_in: int, c_out: int, cfg: BlockConfig) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.even = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = _bn(c_out, cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat((self.even(x), self.odd(shifted)), 1))


class Zero(nn.Module):
    """The `none` op: zeros of the output's shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def _sep_conv(c: int, kernel: int, stride: int, cfg: BlockConfig) -> nn.Sequential:
    """Two stacked (ReLU, depthwise KxK, pointwise 1x1, BN); only the first has the stride."""
    pad = (kernel - 1) // 2
    return nn.Sequential(
        nn.ReLU(inplace=False),
        DepthwiseConv2d(c, kernel, stride, pad),
        nn.Conv2d(c, c, 1, bias=False),
        _bn(c, cfg),
        nn.ReLU(inplace=False),
        DepthwiseConv2d(c, kernel, 1, pad),
        nn.Conv2d(c, c, 1, bias=False),
        _bn(c, cfg),
    )


def _dil_conv(c: int, kernel: int, stride: int, cfg: BlockConfig) -> nn.Sequential:
    """ReLU, depthwise KxK with dilation 2, pointwise 1x1, BN."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c, c, kernel, stride, kernel - 1, dilation=2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        _bn(c, cfg),
    )


class ChannelWeighted(nn.Module):
    """CNAS's `cweight_com`: squeeze-excite channel weights (reduction 16); at stride 2 followed by a
    depthwise 3x3 stride-2 conv and BN."""

    def __init__(self, c: int, stride: int, cfg: BlockConfig) -> None:
        super().__init__()
        mid = max(1, c // 16)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, c, 1),
            nn.Sigmoid(),
        )
        self.reduce = nn.Sequential(DepthwiseConv2d(c, 3, 2, 1), _bn(c, cfg)) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(x * self.gate(x))


SHUFFLE_GROUPS = 4


class ShuffleConv(nn.Module):
    """CNAS's `shuffle_conv_3x3`: a ShuffleNet unit (grouped 1x1 to C/4, BN, ReLU, shuffle, depthwise 3x3,
    BN, grouped 1x1 back to C, BN) added to the input (3x3 average-pooled at stride 2), then ReLU."""

    def __init__(self, c: int, stride: int, cfg: BlockConfig) -> None:
        super().__init__()
        g, mid = SHUFFLE_GROUPS, c // SHUFFLE_GROUPS
        self.body = nn.Sequential(
            nn.Conv2d(c, mid, 1, groups=g, bias=False),
            _bn(mid, cfg),
            nn.ReLU(inplace=True),
            ChannelShuffle(g),
            DepthwiseConv2d(mid, 3, stride, 1),
            _bn(mid, cfg),
            nn.Conv2d(mid, c, 1, groups=g, bias=False),
            _bn(c, cfg),
        )
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def _build(p: Params, c: int, stride: int, cfg: BlockConfig) -> nn.Module:
    kind = p["kind"]
    if kind == "none":
        return Zero(stride)
    if kind == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, cfg)
    if kind == "sep_conv":
        return _sep_conv(c, p["kernel"], stride, cfg)
    if kind == "dil_conv":
        return _dil_conv(c, p["kernel"], stride, cfg)
    if kind == "cweight_com":
        return ChannelWeighted(c, stride, cfg)
    return ShuffleConv(c, stride, cfg)


def _parse(groups: dict[str, str | None]) -> Params:
    name = groups["name"] or ""
    conv = re.fullmatch(r"(sep_conv|dil_conv)_(\d)x\2", name)
    if conv:
        return {"kind": conv.group(1), "kernel": int(conv.group(2))}
    return {"kind": name.removesuffix("_3x3"), "kernel": 3}


def _check(p: Params, c_in: int, c_out: int, stride: int) -> str | None:
    if c_in != c_out:
        return f"cell ops keep the channel count, but this edge maps {c_in} -> {c_out}"
    if stride not in (1, 2):
        return f"stride {stride} is not 1 or 2"
    if p["kind"] == "skip_connect" and stride == 2 and c_in % 2:
        return f"at stride 2 it needs an even channel count, got {c_in}"
    if p["kind"] == "shuffle_conv" and c_in % (SHUFFLE_GROUPS * SHUFFLE_GROUPS):
        return f"it needs channels divisible by {SHUFFLE_GROUPS**2} ({SHUFFLE_GROUPS} groups of C/4), got {c_in}"
    return None


FAMILY = OpFamily(
    name="cell",
    grammar="none, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5, cweight_com, shuffle_conv_3x3",
    pattern=re.compile(
        r"(?P<name>none|skip_connect|sep_conv_3x3|sep_conv_5x5|dil_conv_3x3|dil_conv_5x5|cweight_com|shuffle_conv_3x3)"
    ),
    parse=_parse,
    check=_check,
    build=lambda p, c_in, c_out, stride, cfg: _build(p, c_in, stride, cfg),
)

OP_SETS: dict[str, tuple[str, ...]] = {
    "darts": (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    ),
    "cnas": (
        "none",
        "skip_connect",
        "cweight_com",
        "avg_pool_3x3",
        "max_pool_3x3",
        "sep_conv_3x3",
        "dil_conv_3x3",
        "shuffle_conv_3x3",
    ),
}
