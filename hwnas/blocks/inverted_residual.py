"""Inverted residual (MobileNetV2 MBConv / FBNet IRF): `ir_k{K}_e{E}[_g{G}][_se]`."""

from __future__ import annotations

import re

import torch
from torch import nn

from .common import BlockConfig, ChannelShuffle, ConvBNAct, SqueezeExcite
from .family import OpFamily, Params

KERNELS = (3, 5, 7)


class InvertedResidual(nn.Module):
    """1x1 expand (grouped + shuffled when groups > 1), KxK depthwise, optional SE, 1x1 project.

    The expansion conv is left out at e=1 unless `cfg.expand_at_e1` (FBNet keeps it,
    MobileNetV2 and ProxylessNAS drop it). Residual add when input and output shapes match.
    """

    def __init__(
        self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int, groups: int, se: bool, cfg: BlockConfig
    ) -> None:
        super().__init__()
        mid = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1 or cfg.expand_at_e1:
            layers.append(ConvBNAct(c_in, mid, 1, 1, cfg, groups=groups))
            if groups > 1:
                layers.append(ChannelShuffle(groups))
        layers.append(ConvBNAct(mid, mid, kernel, stride, cfg, groups=mid))
        if se:
            layers.append(SqueezeExcite(mid, cfg))
        layers.append(ConvBNAct(mid, c_out, 1, 1, cfg, groups=groups, act=False))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def start_as_identity(self) -> None:
        """With a residual add, zero the projection's BatchNorm scale so the block starts as the identity."""
        if self.residual:
            norms = [m for m in self.body[-1].modules() if isinstance(m, nn.BatchNorm2d)]
            if norms:
                nn.init.zeros_(norms[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def _parse(groups: dict[str, str | None]) -> Params:
    params = {
        "kernel": int(groups["k"] or 0),
        "expansion": int(groups["e"] or 0),
        "groups": int(groups["g"] or 1),
        "se": groups["se"] is not None,
    }
    if params["kernel"] not in KERNELS:
        raise ValueError(f"kernel {params['kernel']} is not one of {', '.join(map(str, KERNELS))}")
    if params["expansion"] < 1:
        raise ValueError(f"expansion {params['expansion']} is not an integer >= 1")
    if params["groups"] < 1:
        raise ValueError(f"groups {params['groups']} is not an integer >= 1")
    return params


def _check(params: Params, c_in: int, c_out: int, stride: int) -> str | None:
    g = params["groups"]
    if g > 1 and (c_in % g or c_out % g):
        return f"groups {g} must divide both {c_in} input and {c_out} output channels"
    return None


def _build(p: Params, c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> InvertedResidual:
    return InvertedResidual(c_in, c_out, stride, p["kernel"], p["expansion"], p["groups"], p["se"], cfg)


NAMES = re.compile(r"ir_k(?P<k>\d+)_e(?P<e>\d+)(?:_g(?P<g>\d+))?(?P<se>_se)?")
FAMILY = OpFamily(
    "inverted_residual", "ir_k{K}_e{E}[_g{G}][_se] (K in 3, 5, 7; E >= 1; G >= 1)", NAMES, _build, _parse, _check
)
