"""ResNet-family blocks (the FBNet-SE face-recognition space of the MXNet FBNet code): `bottleneck` and its variants.

Every op is the ResNet-50 bottleneck (1x1 c_in -> c_out/4, 3x3 with the layer's stride, 1x1 back to c_out,
added to an identity or 1x1-projection shortcut, then ReLU) with one change:

- `bottleneck_se`: SE-ResNet squeeze-excite (reduction 16) on the branch before the addition;
- `bottleneck_g{G}`: ResNeXt-style 3x3 conv with G groups;
- `bottleneck_shuffle_g{G}`: all three branch convs grouped, channel shuffle after the first 1x1;
- `bottleneck_deform`: the 3x3 conv is a deformable conv (Dai et al. 2017, v1), in pure PyTorch.

`cfg.norm_inside=False` builds the blocks without any BatchNorm (the convs then carry biases).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from .common import BlockConfig, ChannelShuffle, batch_norm
from .family import OpFamily, Params

SE_REDUCTION = 16


def deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 1,
    dilation: int = 1,
) -> torch.Tensor:
    """Deformable convolution v1: each kernel tap reads the input bilinearly at its regular position + an offset.

    x: [N, C_in, H, W]; weight: [C_out, C_in, KH, KW] (no groups); bias: [C_out] or None.
    offset: [N, 2*KH*KW, H_out, W_out], where H_out and W_out are those of `F.conv2d` with the same
    stride, padding and dilation. Channels `2t` and `2t+1` are the (dy, dx) offset, in input pixels,
    of tap t = i*KW + j (row-major over the kernel), at each output position. Tap (i, j) of output
    (oy, ox) reads x at row `oy*stride - padding + i*dilation + dy` and column
    `ox*stride - padding + j*dilation + dx`; points outside the image read zero.
    """
    n, c_in, h, w = x.shape
    c_out, w_in, kh, kw = weight.shape
    if w_in != c_in:
        raise ValueError(f"deform_conv2d: weight expects {w_in} input channels, but x has {c_in}")
    h_out = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    taps = kh * kw
    if tuple(offset.shape) != (n, 2 * taps, h_out, w_out):
        raise ValueError(
            f"deform_conv2d: offset has shape {tuple(offset.shape)}, expected {(n, 2 * taps, h_out, w_out)}"
        )
    opts = {"dtype": x.dtype, "device": x.device}
    tap_y, tap_x = torch.meshgrid(torch.arange(kh, **opts), torch.arange(kw, **opts), indexing="ij")
    rows = (torch.arange(h_out, **opts) * stride - padding).view(1, 1, h_out, 1)
    cols = (torch.arange(w_out, **opts) * stride - padding).view(1, 1, 1, w_out)
    offset = offset.view(n, taps, 2, h_out, w_out)
    py = rows + (tap_y.reshape(1, taps, 1, 1) * dilation) + offset[:, :, 0]  # [N, taps, H_out, W_out]
    px = cols + (tap_x.reshape(1, taps, 1, 1) * dilation) + offset[:, :, 1]
    # Pixel -> grid_sample coordinates. align_corners=False puts pixel k at (2k + 1)/size - 1, which stays
    # well-defined for a 1-pixel-wide input (align_corners=True divides by size - 1 there).
    grid = torch.stack(((2 * px + 1) / w - 1, (2 * py + 1) / h - 1), dim=-1).view(n, taps * h_out, w_out, 2)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.view(n, c_in, taps, h_out, w_out)
    out = torch.einsum("nckhw,ock->nohw", sampled, weight.reshape(c_out, c_in, taps))
    return out if bias is None else out + bias.view(1, c_out, 1, 1)


class DeformConv2d(nn.Module):
    """Deformable KxK conv: a plain conv (zero-initialised, so the block starts as a regular conv) predicts
    the (dy, dx) offsets of every tap at every output position; see `deform_conv2d` for the layout."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1, bias: bool = False
    ) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(c_out)) if bias else None
        self.offset = nn.Conv2d(c_in, 2 * kernel * kernel, kernel, stride, padding)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The weight and bias as `nn.Conv2d` initialises them; the offset conv all zeros."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv2d(x, self.offset(x), self.weight, self.bias, self.stride, self.padding)


class SELayer(nn.Module):
    """SE-ResNet squeeze-excite: global average pool, 1x1 to channels/16, ReLU, 1x1 back, sigmoid, multiply."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


def _conv_norm(conv: nn.Module, channels: int, cfg: BlockConfig) -> list[nn.Module]:
    """`conv` followed by BatchNorm, or alone when `cfg.norm_inside` is False."""
    return [conv, batch_norm(channels, cfg)] if cfg.norm_inside else [conv]


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck: ReLU(branch(x) + shortcut(x)), the branch 1x1 -> 3x3 (stride) -> 1x1 at width c_out/4.

    `groups` groups the 3x3 conv; `pointwise_groups` > 1 also groups both 1x1 convs and shuffles the
    channels after the first; `se` adds squeeze-excite at the end of the branch; `deform` makes the 3x3
    deformable. The shortcut is the identity when the shapes match, else a strided 1x1 conv (+ BN).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        cfg: BlockConfig = BlockConfig(),
        *,
        groups: int = 1,
        pointwise_groups: int = 1,
        se: bool = False,
        deform: bool = False,
    ) -> None:
        super().__init__()
        mid = c_out // 4
        bias = not cfg.norm_inside
        if deform:
            conv3: nn.Module = DeformConv2d(mid, mid, 3, stride, 1, bias=bias)
        else:
            conv3 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=bias)
        layers = [
            *_conv_norm(nn.Conv2d(c_in, mid, 1, groups=pointwise_groups, bias=bias), mid, cfg),
            nn.ReLU(inplace=True),
        ]
        if pointwise_groups > 1:
            layers.append(ChannelShuffle(pointwise_groups))
        layers += [
            *_conv_norm(conv3, mid, cfg),
            nn.ReLU(inplace=True),
            *_conv_norm(nn.Conv2d(mid, c_out, 1, groups=pointwise_groups, bias=bias), c_out, cfg),
        ]
        if se:
            layers.append(SELayer(c_out))
        self.branch = nn.Sequential(*layers)
        if c_in == c_out and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(*_conv_norm(nn.Conv2d(c_in, c_out, 1, stride, bias=bias), c_out, cfg))
        self.act = nn.ReLU(inplace=True)  # safe: it acts on the fresh sum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


def _parse(groups: dict[str, str | None]) -> Params:
    if groups["se"]:
        return {"variant": "se", "groups": 1}
    if groups["deform"]:
        return {"variant": "deform", "groups": 1}
    for variant, key in (("grouped", "g"), ("shuffle", "sg")):
        if groups[key] is not None:
            g = int(groups[key] or 0)
            if g < 2:
                raise ValueError(f"groups {g} is not an integer >= 2")
            return {"variant": variant, "groups": g}
    return {"variant": "plain", "groups": 1}


def _check(params: Params, c_in: int, c_out: int, stride: int) -> str | None:
    if stride not in (1, 2):
        return f"stride {stride} is not 1 or 2"
    if c_out % 4 or c_out < 4:
        return f"bottleneck width c_out/4 must be a whole number >= 1, got c_out {c_out}"
    g, mid = params["groups"], c_out // 4
    if params["variant"] == "grouped" and mid % g:
        return f"groups {g} must divide the bottleneck width {mid} (c_out/4)"
    if params["variant"] == "shuffle" and (c_in % g or mid % g or c_out % g):
        return (
            f"groups {g} must divide the {c_in} input channels, the bottleneck width {mid} (c_out/4) "
            f"and the {c_out} output channels"
        )
    return None


def _build(p: Params, c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> Bottleneck:
    variant, g = p["variant"], p["groups"]
    return Bottleneck(
        c_in,
        c_out,
        stride,
        cfg,
        groups=g if variant in ("grouped", "shuffle") else 1,
        pointwise_groups=g if variant == "shuffle" else 1,
        se=variant == "se",
        deform=variant == "deform",
    )


GRAMMAR = "bottleneck, bottleneck_se, bottleneck_g{G}, bottleneck_shuffle_g{G}, bottleneck_deform (G >= 2)"
NAMES = re.compile(r"bottleneck(?:(?P<se>_se)|(?P<deform>_deform)|_g(?P<g>\d+)|_shuffle_g(?P<sg>\d+))?")
FAMILY = OpFamily("resnet", GRAMMAR, NAMES, _build, _parse, _check)
