"""`DepthwiseConv2d`: on small maps in training, the per-channel matrix form gives the conv's outputs and
gradients; everywhere else it is the conv itself."""

import pytest
import torch
import torch.nn.functional as F

from hwnas.blocks import build_block
from hwnas.blocks.depthwise import DepthwiseConv2d


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 3), (4, 4), (2, 5), (5, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_small_maps_train_with_the_convs_outputs_and_gradients(kernel, stride, size, channels_last):
    torch.manual_seed(kernel * 10 + stride)
    conv = DepthwiseConv2d(6, kernel, stride, kernel // 2).train()
    x = torch.randn(3, 6, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    expected = F.conv2d(x, conv.weight, None, stride, kernel // 2, 1, 6)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, conv.weight), g)
    want = torch.autograd.grad(expected, (x, conv.weight), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_eval_and_large_maps_run_the_conv_itself(monkeypatch):
    import hwnas.blocks.depthwise as depthwise

    calls = []
    monkeypatch.setattr(depthwise, "small_map_depthwise", lambda *a: calls.append(a) or a[0])
    conv, wide = DepthwiseConv2d(4, 3, 1, 1).train(), DepthwiseConv2d(4, 5, 1, 2).train()
    conv(torch.randn(2, 4, 3, 3, requires_grad=True))  # 9 pixels, all under the 3x3 window
    wide(torch.randn(2, 4, 4, 4, requires_grad=True))
    assert len(calls) == 2
    conv(torch.randn(2, 4, 4, 4, requires_grad=True))  # 16 pixels: more than a 3x3 kernel's
    wide(torch.randn(2, 4, 5, 4, requires_grad=True))  # 20 pixels
    conv.eval()(torch.randn(2, 4, 2, 2))
    with torch.no_grad():
        conv.train()(torch.randn(2, 4, 2, 2))
    assert len(calls) == 2


def test_blocks_keep_the_convs_state_dict():
    block = build_block("ir_k5_e6", 8, 8, 1)
    depthwise = [m for m in block.modules() if isinstance(m, DepthwiseConv2d)]
    assert len(depthwise) == 1 and depthwise[0].weight.shape == (48, 1, 5, 5)
    reference = torch.nn.Conv2d(48, 48, 5, 1, 2, groups=48, bias=False)
    reference.load_state_dict(depthwise[0].state_dict())
    x = torch.randn(2, 48, 7, 7)
    torch.testing.assert_close(depthwise[0].eval()(x), reference(x))


def test_small_maps_train_under_bf16_autocast_as_the_conv_does():
    torch.manual_seed(0)
    conv = DepthwiseConv2d(8, 3, 1, 1).train()
    x = torch.randn(4, 8, 2, 2, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        expected = F.conv2d(x, conv.weight, None, 1, 1, 1, 8)
    assert y.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(y, expected, rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32


def test_conv_arithmetic_trains_small_maps_with_the_conv_itself_until_it_ends(monkeypatch):
    import hwnas.blocks.depthwise as depthwise

    calls = []
    monkeypatch.setattr(depthwise, "small_map_depthwise", lambda *a: calls.append(a) or a[0])
    conv, x = DepthwiseConv2d(4, 3, 1, 1).train(), torch.randn(2, 4, 2, 2, requires_grad=True)
    with depthwise.conv_arithmetic():
        y = conv(x)
    torch.testing.assert_close(y, F.conv2d(x, conv.weight, None, 1, 1, 1, 4), rtol=0, atol=0)
    assert calls == []
    conv(x)
    assert len(calls) == 1
