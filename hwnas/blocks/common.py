"""Small building pieces shared by the block families: conv-BN-act, activations, shuffle, SE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .depthwise import DepthwiseConv2d

ACTIVATIONS = ("relu", "relu6", "hswish", "swish")


@dataclass(frozen=True)
class BlockConfig:
    """Knobs of a space that change how every block is built, without changing op names."""

    activation: str = "relu"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    expand_at_e1: bool = True
    se_ratio: float = 0.25
    bn_affine: bool = True
    norm_inside: bool = True  # False: the ResNet-family blocks have no BatchNorm inside (the MXNet FBNet code's layout)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to the nearest multiple of `divisor`, never dropping below 90%."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    raise ValueError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")


def batch_norm(channels: int, cfg: BlockConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation, padded to keep `ceil(size / stride)`."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        cfg: BlockConfig,
        *,
        groups: int = 1,
        act: bool = True,
        dilation: int = 1,
    ) -> None:
        padding = (kernel - 1) // 2 * dilation
        depthwise = groups > 1 and c_in == c_out == groups and dilation == 1
        conv = (
            DepthwiseConv2d(c_in, kernel, stride, padding)
            if depthwise
            else nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, groups=groups, bias=False)
        )
        layers: list[nn.Module] = [conv, batch_norm(c_out, cfg)]
        if act:
            layers.append(activation(cfg.activation))
        super().__init__(*layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: interleave the channels of `groups` groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: channel gates from globally pooled features."""

    def __init__(self, channels: int, cfg: BlockConfig) -> None:
        super().__init__()
        mid = make_divisible(channels * cfg.se_ratio, 8)
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.act = activation("relu")
        self.expand = nn.Conv2d(mid, channels, 1)
        self.gate = nn.Hardsigmoid() if cfg.activation == "hswish" else nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class DropPath(nn.Module):
    """In training, zero a sample's whole branch with probability `p` and scale the kept ones by 1/(1-p).

    `p` is set from outside (the trainer raises it linearly over the epochs, as DARTS does).
    """

    def __init__(self) -> None:
        super().__init__()
        self.p = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = 1.0 - self.p
        mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep
        return x * mask.to(x.dtype) / keep


def set_drop_path(module: nn.Module, p: float) -> None:
    """Set the drop probability of every `DropPath` inside `module`."""
    for m in module.modules():
        if isinstance(m, DropPath):
            m.p = p
