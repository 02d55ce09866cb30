"""Depthwise conv training passes on small maps: PyTorch's conv against `DepthwiseConv2d`, in one run.

    python bench/depthwise_step.py [--threads 2] [--repeats 20]

For each shape (MobileNetV2 at 32x32 and fbnet_cifar's last stages), the forward and backward of a
depthwise conv in training, timed as `F.conv2d` and as `hwnas.blocks.depthwise.DepthwiseConv2d` (which runs
maps of at most 16 pixels as per-channel matrix products), NCHW and channels_last, alternating; medians
of `--repeats` passes after 5 warm-up ones. The two must agree (checked before timing).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from hwnas.blocks.depthwise import DepthwiseConv2d

SHAPES = [  # batch, channels, side, kernel, stride
    (64, 960, 1, 3, 1),
    (64, 576, 2, 3, 2),
    (64, 384, 2, 3, 1),
    (64, 192, 4, 3, 1),
    (64, 2112, 2, 5, 1),
    (64, 1104, 2, 5, 1),
    (64, 672, 4, 5, 1),
    (64, 144, 8, 3, 2),
]


def median_ms(run, repeats: int) -> float:
    times = []
    for i in range(repeats + 5):
        start = time.perf_counter()
        run()
        if i >= 5:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def compare(
    n: int, c: int, side: int, k: int, s: int, layout: torch.memory_format, repeats: int
) -> tuple[float, float]:
    """ms of a training pass of the plain conv and of DepthwiseConv2d, checked to agree first."""
    conv = DepthwiseConv2d(c, k, s, k // 2).train()
    x = torch.randn(n, c, side, side).contiguous(memory_format=layout).requires_grad_()
    expected = F.conv2d(x, conv.weight, None, s, k // 2, 1, c)
    torch.testing.assert_close(conv(x), expected, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(expected)
    plain = median_ms(
        lambda: torch.autograd.grad(F.conv2d(x, conv.weight, None, s, k // 2, 1, c), (x, conv.weight), g), repeats
    )
    return plain, median_ms(lambda: torch.autograd.grad(conv(x), (x, conv.weight), g), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {args.threads} threads; forward + backward, ms (median of {args.repeats})")
    print(f"{'input':>18} {'k':>2} {'s':>2} {'layout':14} {'conv':>8} {'hwnas':>8} {'speed-up':>8}")
    for n, c, side, k, s in SHAPES:
        for layout in (torch.contiguous_format, torch.channels_last):
            a, b = compare(n, c, side, k, s, layout, args.repeats)
            name = "NCHW" if layout == torch.contiguous_format else "channels_last"
            print(f"{f'{n}x{c}x{side}x{side}':>18} {k:>2} {s:>2} {name:14} {a:>8.2f} {b:>8.2f} {a / b:>7.1f}x")


if __name__ == "__main__":
    main()
