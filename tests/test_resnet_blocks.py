import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.blocks import BlockConfig, build_block, grammar, parse_op
from hwnas.blocks.common import ChannelShuffle
from hwnas.blocks.resnet import DeformConv2d, SELayer, deform_conv2d
from hwnas.errors import OpNameError

OPS = ["bottleneck", "bottleneck_se", "bottleneck_g2", "bottleneck_shuffle_g2", "bottleneck_deform"]
NO_NORM = BlockConfig(norm_inside=False)


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("norm_inside", [True, False])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("c_in,c_out,stride,hw", [(16, 16, 1, 8), (16, 16, 2, 9), (8, 16, 1, 7), (8, 32, 2, 8)])
def test_shapes(op, c_in, c_out, stride, hw, norm_inside):
    block = build_block(op, c_in, c_out, stride, BlockConfig(norm_inside=norm_inside)).eval()
    out = block(torch.randn(2, c_in, hw, hw))
    assert out.shape == (2, c_out, -(-hw // stride), -(-hw // stride))
    assert (out >= 0).all()  # the output ReLU
    assert any(isinstance(m, nn.BatchNorm2d) for m in block.modules()) == norm_inside


@pytest.mark.parametrize("op", OPS)
def test_no_norm_inside_means_biased_convs(op):
    block = build_block(op, 8, 16, 2, NO_NORM)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert all(c.bias is not None for c in convs(block))
    assert isinstance(block.shortcut[0], nn.Conv2d) and len(block.shortcut) == 1
    if op == "bottleneck_deform":
        assert next(m for m in block.modules() if isinstance(m, DeformConv2d)).bias is not None


def test_bn_knobs_and_bias_free_convs():
    block = build_block("bottleneck", 8, 16, 2, BlockConfig(bn_eps=1e-3, bn_momentum=0.01))
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 4 and all((bn.eps, bn.momentum) == (1e-3, 0.01) for bn in bns)
    assert all(c.bias is None for c in convs(block))


def test_bottleneck_layout():
    block = build_block("bottleneck", 16, 64, 2)
    c1, c2, c3, proj = convs(block)
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.stride) == (16, 16, (1, 1), (1, 1))
    assert (c2.in_channels, c2.out_channels, c2.kernel_size, c2.stride, c2.padding) == (16, 16, (3, 3), (2, 2), (1, 1))
    assert (c3.in_channels, c3.out_channels, c3.kernel_size) == (16, 64, (1, 1))
    assert (proj.in_channels, proj.out_channels, proj.kernel_size, proj.stride) == (16, 64, (1, 1), (2, 2))


def test_identity_shortcut_or_projection():
    same = build_block("bottleneck", 16, 16, 1)
    assert isinstance(same.shortcut, nn.Identity) and not list(same.shortcut.parameters())
    for c_in, stride in [(16, 2), (8, 1)]:
        conv = build_block("bottleneck", c_in, 16, stride).shortcut[0]
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (stride, stride)


def test_zero_branch_leaves_relu_of_input():
    block = build_block("bottleneck_se", 16, 16, 1).eval()
    last_bn = [m for m in block.branch if isinstance(m, nn.BatchNorm2d)][-1]
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)
    x = torch.randn(1, 16, 5, 5)
    assert torch.equal(block(x), x.relu())


def test_se_has_c_out_over_16_hidden_channels():
    block = build_block("bottleneck_se", 16, 64, 1)
    se = [m for m in block.modules() if isinstance(m, SELayer)]
    assert len(se) == 1 and block.branch[-1] is se[0]
    assert (se[0].reduce.out_channels, se[0].expand.out_channels) == (4, 64)
    assert (
        next(m for m in build_block("bottleneck_se", 8, 8, 1).modules() if isinstance(m, SELayer)).reduce.out_channels
        == 1
    )


def test_grouped_and_shuffle_variants():
    grouped = convs(build_block("bottleneck_g4", 16, 64, 1))
    assert [c.groups for c in grouped] == [1, 4, 1, 1]  # only the 3x3, not the shortcut
    shuffle = build_block("bottleneck_shuffle_g2", 8, 16, 1)
    assert [c.groups for c in convs(shuffle)] == [2, 2, 2, 1]
    kinds = [type(m) for m in shuffle.branch]
    assert kinds[:4] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, ChannelShuffle] and shuffle.branch[3].groups == 2


def test_names_parse_and_are_in_the_grammar():
    assert parse_op("bottleneck").params == {"variant": "plain", "groups": 1}
    assert parse_op("bottleneck_g32").params == {"variant": "grouped", "groups": 32}
    assert parse_op("bottleneck_shuffle_g4").params == {"variant": "shuffle", "groups": 4}
    assert parse_op("bottleneck_deform").params["variant"] == "deform"
    for form in ["bottleneck", "bottleneck_se", "bottleneck_g{G}", "bottleneck_shuffle_g{G}", "bottleneck_deform"]:
        assert form in grammar()


@pytest.mark.parametrize(
    "name,c_in,c_out,stride,match",
    [
        ("bottleneck_g3", 16, 16, 1, r"groups 3 must divide the bottleneck width 4 \(c_out/4\)"),
        ("bottleneck_g32", 64, 64, 1, r"groups 32 must divide the bottleneck width 16 \(c_out/4\)"),
        ("bottleneck_shuffle_g4", 6, 16, 1, "groups 4 must divide the 6 input channels"),
        ("bottleneck", 16, 16, 3, "stride 3 is not 1 or 2"),
        ("bottleneck_se", 16, 6, 1, "bottleneck width c_out/4 must be a whole number"),
        ("bottleneck", 16, 0, 1, "bottleneck width c_out/4 must be a whole number"),
    ],
)
def test_bad_shapes(name, c_in, c_out, stride, match):
    with pytest.raises(OpNameError, match=match) as info:
        build_block(name, c_in, c_out, stride)
    assert repr(name) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name,match", [("bottleneck_g1", "groups 1 is not an integer >= 2"), ("bottleneck_x", "unknown")]
)
def test_bad_names(name, match):
    with pytest.raises(OpNameError, match=match):
        parse_op(name)


# deformable conv -----------------------------------------------------------------------------------------------


def out_size(size: int, stride: int, padding: int, k: int = 3) -> int:
    return (size + 2 * padding - k) // stride + 1


def const_offset(n: int, h: int, w: int, dy: float, dx: float, taps: int = 9) -> torch.Tensor:
    return torch.tensor([dy, dx]).repeat(taps).view(1, 2 * taps, 1, 1).expand(n, -1, h, w).contiguous()


@pytest.mark.parametrize("stride,padding,hw", [(1, 1, 7), (2, 1, 7), (2, 1, 8), (1, 0, 6)])
def test_zero_offset_is_a_plain_conv(stride, padding, hw):
    x, weight, bias = torch.randn(2, 3, hw, hw + 1), torch.randn(5, 3, 3, 3), torch.randn(5)
    h, w = out_size(hw, stride, padding), out_size(hw + 1, stride, padding)
    got = deform_conv2d(x, torch.zeros(2, 18, h, w), weight, bias, stride, padding)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, stride, padding), atol=1e-5, rtol=0)


def test_module_at_init_is_a_plain_conv():
    for stride in (1, 2):
        conv = DeformConv2d(4, 6, 3, stride, 1, bias=True)
        x = torch.randn(2, 4, 9, 9)
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, stride, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0)])
def test_offset_dx_one_shifts_the_input_left(stride, padding):
    x, weight = torch.randn(2, 3, 7, 8), torch.randn(4, 3, 3, 3)
    h, w = out_size(7, stride, padding), out_size(8, stride, padding)
    got = deform_conv2d(x, const_offset(2, h, w, 0.0, 1.0), weight, None, stride, padding)
    # tap j of output column o reads column o*stride - padding + j + 1 of x: zero-pad x as the conv would,
    # then drop the first column and append a zero column on the right, and convolve without padding
    padded = F.pad(x, (padding, padding, padding, padding))
    shifted = torch.cat((padded[..., 1:], torch.zeros_like(padded[..., :1])), dim=-1)
    torch.testing.assert_close(got, F.conv2d(shifted, weight, None, stride), atol=1e-5, rtol=0)
    if padding == 0:  # the plain form: x[..., 1:] with a zero column on the right
        plain = torch.cat((x[..., 1:], torch.zeros_like(x[..., :1])), dim=-1)
        torch.testing.assert_close(got, F.conv2d(plain, weight, None, stride), atol=1e-5, rtol=0)


def test_fractional_offset_is_bilinear():
    x, weight, bias = torch.randn(1, 2, 6, 7), torch.randn(3, 2, 3, 3), torch.randn(3)
    got = deform_conv2d(x, const_offset(1, 6, 7, 0.0, 0.5), weight, bias)
    padded = F.pad(x, (1, 1, 1, 1))
    shifted = torch.cat((padded[..., 1:], torch.zeros_like(padded[..., :1])), dim=-1)
    torch.testing.assert_close(got, F.conv2d((padded + shifted) / 2, weight, bias), atol=1e-5, rtol=0)


def test_offset_layout_is_dy_dx_per_row_major_tap():
    x, weight = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    offset = torch.zeros(1, 18, 6, 6)
    offset[:, 2 * 1] = 1.0  # tap 1 = kernel (row 0, col 1): dy = +1 moves it onto the centre tap (1, 1)
    moved = weight.clone()
    moved[:, :, 1, 1] += moved[:, :, 0, 1]
    moved[:, :, 0, 1] = 0
    torch.testing.assert_close(deform_conv2d(x, offset, weight), F.conv2d(x, moved, padding=1), atol=1e-5, rtol=0)


def test_gradients_reach_the_offset_conv():
    block = build_block("bottleneck_deform", 8, 16, 2)
    block(torch.randn(2, 8, 7, 7)).square().sum().backward()
    offset_conv = next(m for m in block.modules() if isinstance(m, DeformConv2d)).offset
    assert offset_conv.weight.grad.abs().sum() > 0 and offset_conv.bias.grad.abs().sum() > 0


def test_bad_offset_shape():
    with pytest.raises(ValueError, match=r"offset has shape \(1, 18, 4, 4\), expected \(1, 18, 5, 5\)"):
        deform_conv2d(torch.randn(1, 2, 5, 5), torch.zeros(1, 18, 4, 4), torch.randn(3, 2, 3, 3))
