"""Fused soft mixing: `sum_k w_k op_k(x)` of one layer with its inverted-residual candidates run as wide convs.

In a soft DNAS step (FBNet's Gumbel-softmax, the DARTS-style softmax) every candidate of a layer runs on
the same input. The plain inverted-residual candidates (`ir_k{K}_e{E}`: 1x1 expand, KxK depthwise, 1x1
project, each followed by BatchNorm) then run together, with the same mathematics:
- per kernel size, the 1x1 expansions as one conv whose weight is the candidates' weights concatenated
  along the outputs, and the depthwise convs as one grouped conv on its output (one expansion per kernel
  size: the depthwise conv of a channel slice would copy it, as a slice is not contiguous);
- the projections as one grouped conv where hidden widths match, else one conv per candidate;
- each stage's BatchNorms as one `F.batch_norm` over the concatenated channels (BatchNorm is per channel),
  the updated running statistics copied back into each candidate's own buffers;
- the mixing weights folded into the last BatchNorm's scale and shift, then a sum over candidates; the
  residuals as `(sum_k w_k) x`.
Weights are concatenated from the candidates' own parameters at each forward, so gradients reach them and
state dicts, checkpoints, `extract_model` and eval mode are unchanged. Every other candidate (grouped
`_g{G}` with a shuffle, `_se`, other families, plugins) runs on its own and is added to the sum, so the
result equals the unfused mixture up to float rounding. Fusion is opt-in (`with fusion(True):`; its
measurements are in bench/RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.common import ConvBNAct
from ..blocks.depthwise import DepthwiseConv2d
from ..blocks.inverted_residual import InvertedResidual
from .switch import Switch

fusion = Switch()  # `with fusion(True):` soft mixtures run fused


@dataclass(frozen=True)
class Fusable:
    """An inverted-residual candidate the fused path covers, and the parts it reads."""

    index: int
    kernel: int
    hidden: int
    expand: ConvBNAct | None
    depthwise: ConvBNAct
    project: ConvBNAct
    residual: bool


def _plain_conv(conv: nn.Module, kernel: int, groups: int) -> bool:
    return (
        type(conv) in (nn.Conv2d, DepthwiseConv2d)
        and (kernel > 1 or conv.stride == (1, 1))
        and conv.bias is None
        and conv.kernel_size == (kernel, kernel)
        and conv.padding == ((kernel - 1) // 2,) * 2
        and conv.dilation == (1, 1)
        and conv.groups == groups
        and conv.padding_mode == "zeros"
    )


def _plain_norm(norm: nn.Module, training: bool) -> bool:
    return (
        type(norm) is nn.BatchNorm2d
        and norm.affine
        and norm.track_running_stats
        and norm.momentum is not None
        and norm.training == training
    )


def _conv_bn(module: nn.Module, act: bool, training: bool) -> bool:
    return (
        type(module) is ConvBNAct
        and len(module) == (3 if act else 2)
        and _plain_norm(module[1], training)
        and (not act or isinstance(module[2], nn.ReLU | nn.ReLU6 | nn.Hardswish | nn.SiLU))
    )


def fusable(index: int, module: nn.Module, training: bool) -> Fusable | None:
    """`module` as a `Fusable` if it is a plain inverted residual (no groups, no SE), else None."""
    if type(module) is not InvertedResidual or type(module.body) is not nn.Sequential:
        return None
    parts = list(module.body)
    if len(parts) not in (2, 3) or not all(_conv_bn(p, p is not parts[-1], training) for p in parts):
        return None
    expand = parts[0] if len(parts) == 3 else None
    depthwise, project = parts[-2], parts[-1]
    hidden = depthwise[0].in_channels
    kernel = depthwise[0].kernel_size[0]
    if not (
        _plain_conv(depthwise[0], kernel, hidden)
        and depthwise[0].out_channels == hidden
        and _plain_conv(project[0], 1, 1)
        and (expand is None or (_plain_conv(expand[0], 1, 1) and expand[0].out_channels == hidden))
    ):
        return None
    return Fusable(index, kernel, hidden, expand, depthwise, project, module.residual)


def batch_norm(norms: Sequence[nn.BatchNorm2d], x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """`norms` applied to their channels of `x` as one `F.batch_norm`, each output channel times `scale`;
    in training the updated running statistics are copied back into each norm."""
    first = norms[0]
    weight = torch.cat([bn.weight for bn in norms])
    bias = torch.cat([bn.bias for bn in norms])
    if scale is not None:
        weight, bias = weight * scale, bias * scale
    mean = torch.cat([bn.running_mean for bn in norms])
    var = torch.cat([bn.running_var for bn in norms])
    y = F.batch_norm(x, mean, var, weight, bias, first.training, first.momentum, first.eps)
    if first.training:
        sizes = [bn.num_features for bn in norms]
        with torch.no_grad():
            for bn, m, v in zip(norms, mean.split(sizes), var.split(sizes), strict=True):
                bn.num_batches_tracked.add_(1)
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
    return y


def _conv(x: torch.Tensor, parts: Sequence[ConvBNAct], stride: int = 1, groups: int = 1) -> torch.Tensor:
    conv = parts[0][0]
    weight = torch.cat([p[0].weight for p in parts]) if len(parts) > 1 else conv.weight
    return F.conv2d(x, weight, None, stride, conv.padding, 1, groups)


def _bn_act(x: torch.Tensor, parts: Sequence[ConvBNAct]) -> torch.Tensor:
    return parts[0][2](batch_norm([p[1] for p in parts], x))


def _compatible(group: Sequence[Fusable]) -> bool:
    """Same stride, output width and residual; BatchNorms with the same eps and momentum; the same activation."""
    shapes = {(f.depthwise[0].stride, f.project[0].out_channels, f.residual) for f in group}
    parts = [part for f in group for part in (f.expand, f.depthwise, f.project) if part is not None]
    norms = {(part[1].eps, part[1].momentum) for part in parts}
    acts = {type(part[2]) for part in parts if len(part) == 3}
    return len(shapes) == 1 and len(norms) == 1 and len(acts) == 1


def fused_output(group: Sequence[Fusable], x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """`sum_k weights[k] * body_k(x)` over the candidates of `group` (same input, stride and output), residuals
    left out."""
    group = sorted(group, key=lambda f: (f.kernel, f.expand is None))
    stride = group[0].depthwise[0].stride
    projected = []
    for _, kernel_group in groupby(group, key=lambda f: f.kernel):
        fs = list(kernel_group)
        expands = [f.expand for f in fs if f.expand is not None]
        inputs = [_bn_act(_conv(x, expands), expands)] if expands else []
        inputs += [x for f in fs if f.expand is None]
        dw_in = inputs[0] if len(inputs) == 1 else torch.cat(inputs, 1)
        dw_parts = [f.depthwise for f in fs]
        mid = _bn_act(_conv(dw_in, dw_parts, stride, dw_in.shape[1]), dw_parts)
        if len({f.hidden for f in fs}) == 1:
            projected.append(_conv(mid, [f.project for f in fs], groups=len(fs)))
        else:
            projected += [_conv(m, [f.project]) for m, f in zip(mid.split([f.hidden for f in fs], 1), fs, strict=True)]
    p = projected[0] if len(projected) == 1 else torch.cat(projected, 1)
    w = weights[[f.index for f in group]]
    c_out = group[0].project[0].out_channels
    y = batch_norm([f.project[1] for f in group], p, w.repeat_interleave(c_out))
    return y.unflatten(1, (len(group), c_out)).sum(1)


def mixed_output(
    candidates: Sequence[nn.Module], x: torch.Tensor, weights: torch.Tensor, training: bool
) -> torch.Tensor:
    """`sum_k weights[k] * candidates[k](x)`, skipping zero weights, with the plain inverted residuals fused
    (a scalar zero when every weight is zero, as the unfused sum)."""
    active = [i for i, nonzero in enumerate(weights.ne(0).tolist()) if nonzero]
    group = [f for i in active if (f := fusable(i, candidates[i], training)) is not None]
    if len(group) < 2 or not _compatible(group):
        group = []
    fused = [f.index for f in group]
    identity = [i for i in active if type(candidates[i]) is nn.Identity]
    passthrough = identity + (fused if group and group[0].residual else [])
    out = fused_output(group, x, weights) if group else x.new_zeros(())
    if passthrough:
        out = out + weights[passthrough].sum() * x
    for i in active:
        if i not in fused and i not in identity:
            out = out + weights[i] * candidates[i](x)
    return out
