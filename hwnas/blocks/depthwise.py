"""`DepthwiseConv2d`: a depthwise conv whose training steps on small maps run as per-channel matrix products.

PyTorch's CPU depthwise convolution is fast on large maps and slow to differentiate on small ones: the
training pass of a 3x3 depthwise conv over 64 x 960 maps of 1x1 took 17 ms here, 21x the matrix form below;
MobileNetV2 at 32x32 spent 47% of its training step there (bench/RESULTS.md). On a map of at most
`SMALL_MAP` pixels and at most the kernel's, each output pixel is a weighted sum of the input pixels under
its window, so the conv is, per channel, a (pixels out x pixels in) matrix of kernel taps (0 where the
window falls on padding) times the input's pixels: `torch.bmm` over channels, whose backward is two
more. The parameters, the state dict and the arithmetic are the conv's; eval mode, `torch.no_grad`,
export, CUDA and larger maps run the conv itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import nn

# the matrix form measured faster on maps of at most 16 pixels (4x4) that the kernel's window covers: 1x1 and
# 2x2 maps for 3x3 kernels (8-24x), up to 4x4 for 5x5 (3-24x); a 4x4 map under a 3x3 kernel ran 0.2-0.4x
SMALL_MAP = 16
MATRIX_FORM = {"enabled": True}  # off inside `conv_arithmetic()`


@contextmanager
def conv_arithmetic() -> Iterator[None]:
    """Depthwise convs run as torch's conv everywhere inside: the float path of a build that must reproduce
    bit for bit whatever speed-up lands later (bench/groundtruth pins it)."""
    before = MATRIX_FORM["enabled"]
    MATRIX_FORM["enabled"] = False
    try:
        yield
    finally:
        MATRIX_FORM["enabled"] = before


@lru_cache(maxsize=256)
def tap_index(h: int, w: int, kernel: int, stride: int, padding: int) -> tuple[torch.Tensor, int, int]:
    """For each (output pixel, input pixel), the kernel tap that links them (kernel*kernel: none); the
    output's height and width."""
    ho, wo = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    index = torch.full((ho * wo, h * w), kernel * kernel, dtype=torch.long)
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(kernel):
                for kx in range(kernel):
                    iy, ix = oy * stride - padding + ky, ox * stride - padding + kx
                    if 0 <= iy < h and 0 <= ix < w:
                        index[oy * wo + ox, iy * w + ix] = ky * kernel + kx
    return index, ho, wo


class ChannelMatmul(torch.autograd.Function):
    """`bmm(taps, x)` over channels, with contiguous operands forwards and backwards: CPU `bmm` of many small
    matrices given strided ones (channels_last activations, their gradients) copies them one matrix at a time.
    `x` is kept as given (a view of the input, which autograd keeps anyway), made contiguous again backwards."""

    @staticmethod
    def forward(ctx, taps: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(taps, x)
        return torch.bmm(taps.contiguous(), x.contiguous())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        taps, x = ctx.saved_tensors
        grad = grad.contiguous()
        return torch.bmm(grad, x.contiguous().transpose(1, 2)), torch.bmm(taps.contiguous().transpose(1, 2), grad)


def small_map_depthwise(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """The depthwise conv of `x` (N, C, H, W) by `weight` (C, 1, K, K), zero padding, as per-channel matrix
    products."""
    n, c, h, w = x.shape
    kernel = weight.shape[-1]
    index, ho, wo = tap_index(h, w, kernel, stride, padding)
    taps = torch.cat([weight.reshape(c, -1), weight.new_zeros(c, 1)], 1)[:, index]  # C, out, in (CPU only)
    # under autocast, in the dtype the conv would have run in
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    out = ChannelMatmul.apply(taps.to(dtype), x.to(dtype).reshape(n, c, h * w).permute(1, 2, 0))  # C, out, N
    y = out.permute(2, 0, 1).reshape(n, c, ho, wo)
    keep = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return y.contiguous(memory_format=torch.channels_last if keep else torch.contiguous_format)


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise `nn.Conv2d` (groups = channels, square kernel and stride, zero padding, no bias, no
    dilation) that trains on the CPU through `small_map_depthwise` on maps of at most SMALL_MAP pixels and at
    most its kernel's."""

    def __init__(self, channels: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(channels, channels, kernel, stride, padding, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # nested: TorchScript skips the body of `if not is_scripting()` alone, and compiles the conv only
        if not torch.jit.is_scripting():  # noqa: SIM102
            if self.small_map_training(x):
                return small_map_depthwise(x, self.weight, self.stride[0], self.padding[0])
        return self._conv_forward(x, self.weight, self.bias)

    def small_map_training(self, x: torch.Tensor) -> bool:
        """Whether this call trains on a CPU map of at most SMALL_MAP pixels and at most the kernel's."""
        return (
            self.training
            and MATRIX_FORM["enabled"]
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.shape[-2] * x.shape[-1] <= min(SMALL_MAP, self.kernel_size[0] ** 2)
        )
