import pytest
import torch
from torch import nn

from hwnas.blocks import BlockConfig, build_block, grammar, parse_op
from hwnas.blocks.common import ChannelShuffle, SqueezeExcite
from hwnas.errors import OpNameError


def run(op: str, c_in: int, c_out: int, stride: int, cfg: BlockConfig = BlockConfig(), hw: int = 9) -> torch.Tensor:
    block = build_block(op, c_in, c_out, stride, cfg).eval()
    return block(torch.randn(2, c_in, hw, hw))


@pytest.mark.parametrize(
    "op", ["ir_k3_e1", "ir_k5_e3", "ir_k7_e6", "ir_k3_e1_g2", "ir_k5_e6_g4", "ir_k3_e6_se", "ir_k5_e3_g2_se"]
)
@pytest.mark.parametrize("c_in,c_out,stride", [(16, 16, 1), (16, 24, 2), (8, 16, 1)])
def test_inverted_residual_shapes(op, c_in, c_out, stride):
    assert run(op, c_in, c_out, stride).shape == (2, c_out, -(-9 // stride), -(-9 // stride))


def test_inverted_residual_parts():
    block = build_block("ir_k5_e3_g2_se", 16, 16, 1)
    modules = list(block.modules())
    assert any(isinstance(m, ChannelShuffle) and m.groups == 2 for m in modules)
    assert any(isinstance(m, SqueezeExcite) for m in modules)
    convs = [m for m in modules if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups > 1]
    assert len(convs) == 2  # both pointwise convs grouped
    dw = [m for m in modules if isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5)]
    assert dw[0].groups == dw[0].in_channels == 48
    assert block.residual and not build_block("ir_k3_e6", 16, 16, 2).residual


def test_residual_adds_input():
    block = build_block("ir_k3_e3", 8, 8, 1).eval()
    for p in block.body[-1].parameters():  # zero the projection's BN: the block becomes the identity
        nn.init.zeros_(p)
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(block(x), x)


def test_expansion_at_e1_is_a_knob():
    def params(cfg):
        return sum(p.numel() for p in build_block("ir_k3_e1", 32, 16, 1, cfg).parameters())

    # FBNet keeps the 32->32 1x1 (+BN) at e=1; MobileNetV2 drops it
    assert params(BlockConfig(expand_at_e1=True)) - params(BlockConfig(expand_at_e1=False)) == 32 * 32 + 64


@pytest.mark.parametrize("act,cls", [("relu", nn.ReLU), ("relu6", nn.ReLU6), ("hswish", nn.Hardswish)])
def test_activation_knob(act, cls):
    block = build_block("ir_k3_e6", 8, 8, 1, BlockConfig(activation=act))
    assert sum(isinstance(m, cls) for m in block.modules()) == 2


def test_bn_knobs():
    bn = next(
        m
        for m in build_block("ir_k3_e6", 8, 8, 1, BlockConfig(bn_eps=1e-3, bn_momentum=0.01)).modules()
        if isinstance(m, nn.BatchNorm2d)
    )
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


def test_channel_shuffle_interleaves():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_skip_is_identity_or_projection():
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(build_block("skip", 8, 8, 1)(x), x)
    proj = build_block("skip", 8, 16, 2)
    conv = next(m for m in proj.modules() if isinstance(m, nn.Conv2d))
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert proj(x).shape == (1, 16, 3, 3)


def test_zero_only_where_shapes_match():
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(build_block("zero", 8, 8, 1)(x), x)
    with pytest.raises(OpNameError, match=r"'zero' cannot be used here.*8 -> 16"):
        build_block("zero", 8, 16, 1)
    with pytest.raises(OpNameError, match="stride 2"):
        build_block("zero", 8, 8, 2)


@pytest.mark.parametrize("op", ["shuffle_k3", "shuffle_k5", "shuffle_k7", "shuffle_xception"])
def test_shuffle_blocks(op):
    assert run(op, 16, 16, 1).shape == (2, 16, 9, 9)
    assert run(op, 16, 48, 2).shape == (2, 48, 5, 5)
    block = build_block(op, 16, 16, 1).eval()
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(block(x)[:, :8], x[:, 0::2])  # even channels pass through untouched
    with pytest.raises(OpNameError, match="equal, even"):
        build_block(op, 16, 24, 1)


def test_shuffle_kernel_sizes():
    kernels = {m.kernel_size for m in build_block("shuffle_k7", 16, 32, 2).modules() if isinstance(m, nn.Conv2d)}
    assert (7, 7) in kernels
    xception = [m for m in build_block("shuffle_xception", 16, 16, 1).main.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in xception) == 3


def test_fixed_ops():
    assert run("conv_k3", 3, 16, 2).shape == (2, 16, 5, 5)
    assert run("max_pool_3x3", 16, 16, 2).shape == (2, 16, 5, 5)
    assert run("avg_pool_3x3", 16, 16, 1).shape == (2, 16, 9, 9)


def test_parse_params():
    assert parse_op("ir_k5_e6_g2_se").params == {"kernel": 5, "expansion": 6, "groups": 2, "se": True}
    assert parse_op("shuffle_xception").params == {"kernel": 3, "xception": True}


@pytest.mark.parametrize(
    "name,match",
    [
        ("ir_k4_e6", "kernel 4 is not one of 3, 5, 7"),
        ("ir_k3_e0", "expansion 0"),
        ("ir_k3_e6_g0", "groups 0"),
        ("conv_k2", "kernel 2 is not an odd"),
        ("k3_e6", "unknown op 'k3_e6'"),
        ("ir_k3_e6_se_g2", "unknown op"),
        ("shuffle_k9", "unknown op"),
        ("", "unknown op ''"),
    ],
)
def test_bad_names_name_themselves_and_the_grammar(name, match):
    with pytest.raises(OpNameError, match=match) as info:
        parse_op(name)
    message = str(info.value)
    assert repr(name) in message and "\n" not in message
    family_grammar = "conv_k{K}" if name.startswith("conv") else "ir_k{K}_e{E}"
    assert family_grammar in message


def test_group_count_must_divide_channels():
    with pytest.raises(OpNameError, match="groups 4 must divide"):
        build_block("ir_k3_e1_g4", 18, 18, 1)


def test_grammar_lists_every_family():
    for form in ["ir_k{K}", "skip", "zero", "shuffle_xception", "conv_k{K}", "max_pool_3x3"]:
        assert form in grammar()
