"""DARTS/CNAS cell ops in the registry, cell spaces, genotypes and the evaluation network built from them."""

import json

import pytest
import torch

from hwnas.arch import Architecture
from hwnas.blocks import BlockConfig, build_block, set_drop_path
from hwnas.blocks.cell_ops import OP_SETS
from hwnas.cli import main
from hwnas.cost import profile_arch
from hwnas.errors import ArchError, OpNameError, SpaceError
from hwnas.model import build_model
from hwnas.nets import AuxiliaryOutputs, CellNet
from hwnas.spaces import load_space

CELL_OPS = sorted(set(OP_SETS["darts"]) | set(OP_SETS["cnas"]))
DARTS_V2 = Architecture.from_zoo("darts_v2").genotype.to_dict()


@pytest.mark.parametrize("op", CELL_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("size", [8, 7])
def test_every_cell_op_keeps_channels_and_divides_the_size_by_its_stride(op, stride, affine, size):
    block = build_block(op, 16, 16, stride, BlockConfig(bn_affine=affine))
    out = block(torch.randn(2, 16, size, size))
    side = -(-size // stride)
    assert out.shape == (2, 16, side, side)
    affine_params = [m.weight for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.affine]
    assert not affine_params if not affine else True
    if op == "none":
        assert not out.any()


def test_op_sets():
    assert len(OP_SETS["darts"]) == 8 and len(OP_SETS["cnas"]) == 8
    assert {"cweight_com", "shuffle_conv_3x3"} <= set(OP_SETS["cnas"])
    assert not {"sep_conv_5x5", "dil_conv_5x5"} & set(OP_SETS["cnas"])
    assert load_space("cnas").ops == OP_SETS["cnas"]
    assert load_space("darts", ops=["none", "skip_connect", "sep_conv_3x3"]).ops == (
        "none",
        "skip_connect",
        "sep_conv_3x3",
    )


def test_cell_ops_refuse_shapes_they_cannot_keep():
    with pytest.raises(OpNameError, match="keep the channel count"):
        build_block("sep_conv_3x3", 8, 16, 1)
    with pytest.raises(OpNameError, match="divisible by 16"):
        build_block("shuffle_conv_3x3", 8, 8, 1)
    with pytest.raises(SpaceError, match=r"cell 0 \(8 channels\).*shuffle_conv_3x3.*divisible by 16"):
        load_space("cnas", init_channels=8)


def test_skip_connect_is_identity_or_factorized_reduce_and_sep_conv_is_twice_stacked():
    x = torch.randn(1, 8, 6, 6)
    assert torch.equal(build_block("skip_connect", 8, 8, 1)(x), x)
    sep = build_block("sep_conv_3x3", 8, 8, 1)
    depthwise = [m for m in sep.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 8]
    assert len(depthwise) == 2
    dil = next(m for m in build_block("dil_conv_5x5", 8, 8, 1).modules() if isinstance(m, torch.nn.Conv2d))
    assert dil.dilation == (2, 2) and dil.kernel_size == (5, 5)


def test_darts_v2_has_exactly_the_published_parameter_count():
    arch = Architecture.from_dict(
        {
            "format": "hwnas.arch/1",
            "space": "darts",
            "space_args": {"init_channels": 36, "layers": 20},
            "genotype": DARTS_V2,
        }
    )
    model = build_model(arch)
    assert isinstance(model, CellNet)
    assert sum(p.numel() for p in model.parameters()) == 3_349_342
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    zoo = Architecture.from_zoo("darts_v2")  # trained with the auxiliary head, which the deployed count leaves out
    assert zoo.space_args["auxiliary"] is True
    assert profile_arch(zoo).params == 3_349_342


def test_imagenet_form_uses_the_two_step_stem():
    arch = Architecture.from_zoo("darts_v2").with_space_args(
        input_size=[3, 224, 224], num_classes=1000, init_channels=48, layers=14, auxiliary=False
    )
    assert arch.spec.stem.kind == "imagenet" and arch.spec.cells[0].reduction_prev
    assert round(profile_arch(arch).params / 1e5) == 47  # DARTS on ImageNet: 4.7M


@pytest.mark.parametrize(
    ("side", "stem", "first_cell_hw"), [(32, "cifar", 32), (64, "cnas64", 32), (128, "cnas128", 64)]
)
def test_cnas_stems_are_chosen_by_input_size(side, stem, first_cell_hw):
    space = load_space("cnas", input_size=[3, side, side])
    assert space.stem.kind == stem and space.cells[0].input_hw == (first_cell_hw, first_cell_hw)


def test_auxiliary_head_and_drop_path_act_in_training_only():
    torch.manual_seed(0)
    arch = Architecture.from_zoo("darts_v2").with_space_args(init_channels=8, layers=5, auxiliary=True)
    model = build_model(arch)
    x = torch.randn(4, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, AuxiliaryOutputs) and out.aux_logits.shape == (4, 10)
    model.eval()
    plain = model(x)
    assert isinstance(plain, torch.Tensor)
    set_drop_path(model, 0.5)
    assert torch.equal(model(x), plain)  # eval: drop-path is off whatever its probability
    model.train()
    torch.manual_seed(1)
    a = model(x).logits
    torch.manual_seed(2)
    b = model(x).logits
    assert not torch.allclose(a, b)  # different branches dropped
    set_drop_path(model, 0.0)
    torch.manual_seed(1)
    c = model(x).logits
    torch.manual_seed(2)
    assert torch.allclose(c, model(x).logits)


def _arch(genotype, **args):
    return {"format": "hwnas.arch/1", "space": "darts", "space_args": args, "genotype": genotype}


def _broken(change):
    genotype = json.loads(json.dumps(DARTS_V2))
    change(genotype)
    return genotype


@pytest.mark.parametrize(
    ("genotype", "message"),
    [
        (_broken(lambda g: g["normal"].__setitem__(2, ["sep_conv_3x3", 3])), r"normal\[2\]: node 1 reads state 3"),
        (_broken(lambda g: g["reduce"].__setitem__(0, ["conv_7x1", 0])), r"reduce\[0\]: op 'conv_7x1' is not in"),
        (_broken(lambda g: g["normal"].pop()), r"normal: .*two per node"),
        (_broken(lambda g: g.__setitem__("normal_concat", [2, 6])), r"normal_concat: got \[2, 6\], expected .*2\.\.5"),
        (_broken(lambda g: g.pop("reduce_concat")), r"reduce_concat: got None"),
        (_broken(lambda g: g.__setitem__("extra", 1)), r"unknown field 'extra'"),
    ],
)
def test_bad_genotypes_get_one_line(genotype, message):
    with pytest.raises(ArchError, match=message):
        Architecture.from_dict(_arch(genotype))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"layers": 2}, r"layers: got 2, expected an integer in 3\.\.1000"),
        ({"input_size": [3, 512, 512]}, r"no cell-space stem is made for inputs of 512 px"),
        ({"input_size": [3, 16, 16], "auxiliary": True}, r"auxiliary head reads cell 5 at 4x4, expected at least 8x8"),
        ({"nodes": 0}, r"nodes: got 0"),
    ],
)
def test_bad_cell_space_args_get_one_line(args, message):
    with pytest.raises(ArchError, match=message):
        Architecture.from_dict(_arch(DARTS_V2, **args))


def test_choices_and_genotype_do_not_mix():
    with pytest.raises(ArchError, match="cell space; expected a genotype"):
        Architecture.from_dict({**_arch(DARTS_V2), "choices": ["skip"]})
    with pytest.raises(ArchError, match="layer-wise space; expected choices"):
        Architecture.from_dict({"format": "hwnas.arch/1", "space": "fbnet_small", "genotype": DARTS_V2})


@pytest.mark.slow
def test_a_genotype_file_round_trips_and_exports(tmp_path, capsys):
    arch = Architecture.from_zoo("darts_v2").with_space_args(init_channels=8, layers=5)
    path = arch.save(tmp_path / "g.json")
    assert Architecture.load(path) == arch
    assert main(["export", str(path), "--format", "onnx", "-o", str(tmp_path / "g.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] <= 1e-4
    assert main(["export", str(path), "--format", "torchscript", "-o", str(tmp_path / "g.pt"), "--json"]) == 0


def test_cli_shows_cell_spaces_and_profiles_genotypes(capsys):
    assert main(["spaces"]) == 0
    listing = capsys.readouterr().out
    assert "darts" in listing and "cnas" in listing and "cell space" in listing
    assert main(["spaces", "darts"]) == 0
    assert "cells.2  reduce" in capsys.readouterr().out
    assert main(["profile", "darts_v2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 3_349_342
    assert main(["show", "pc_darts"]) == 0
    assert "cells.19" in capsys.readouterr().out
