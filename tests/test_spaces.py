import pytest

from hwnas.errors import SpaceError
from hwnas.spaces import builtin_spaces, load_space

EXPECTED_LAYERS = {
    "fbnet": 22,
    "fbnet_cifar": 22,
    "fbnet_small": 7,
    "proxylessnas": 21,
    "spos": 20,
    "single_path": 21,
    "fairnas": 19,
    "mobilenet_v2": 16,
    "fbnet_se": 16,
}


def test_builtins():
    assert builtin_spaces() == sorted([*EXPECTED_LAYERS, "cnas", "darts"])  # plus the cell spaces


@pytest.mark.parametrize("name,layers", EXPECTED_LAYERS.items())
def test_layer_counts_and_shapes_chain(name, layers):
    space = load_space(name)
    assert space.num_layers == layers
    c, hw = space.stem[-1].c_out, space.layers[0].input_hw
    for layer in space.layers:
        assert (layer.c_in, layer.input_hw) == (c, hw)
        c, hw = layer.c_out, tuple(-(-x // layer.stride) for x in layer.input_hw)
    assert space.head.c_in == c


def test_fbnet_macro():
    space = load_space("fbnet")
    assert [layer.c_out for layer in space.layers][::4] == [16, 24, 32, 64, 112, 184]
    assert {len(layer.candidates) for layer in space.layers} == {9}
    assert space.head.channels == 1984 and space.layers[-1].input_hw == (7, 7)


def test_fbnet_cifar_runs_the_stem_at_stride_1():
    space = load_space("fbnet_cifar")
    assert space.input_size == (3, 32, 32) and space.head.num_classes == 10
    assert space.stem[0].stride == 1 and space.head.input_hw == (2, 2)
    assert space.layers == load_space("fbnet", input_size=[3, 32, 32], num_classes=10, stem_stride=1).layers


def test_zero_never_on_a_stage_first_layer():
    space = load_space("proxylessnas")
    for layer in space.layers:
        assert ("zero" in layer.candidates) == (layer.c_in == layer.c_out and layer.stride == 1)


def test_width_multiplier_rounds_to_multiples_of_8():
    space = load_space("mobilenet_v2", width_mult=0.35)
    assert all(layer.c_out % 8 == 0 for layer in space.layers)
    assert space.layers[0].c_out == 8 and space.head.channels == 1280  # the head only widens
    assert load_space("mobilenet_v2", width_mult=1.4).head.channels == 1792


def test_knobs_change_blocks():
    space = load_space("fbnet", activation="hswish", bn_eps=1e-3, expand_at_e1=False)
    assert space.block_config.activation == "hswish" and not space.block_config.expand_at_e1
    assert space.knob_overrides() == {"activation": "hswish", "bn_eps": 1e-3, "expand_at_e1": False}
    assert space.fingerprint() != load_space("fbnet").fingerprint()


def test_width_overrides():
    space = load_space(
        "proxylessnas", stem_channels=[40, 24], stage_channels=[32, 56, 112, 128, 256, 432], last_channels=1728
    )
    assert space.stem[1].c_out == 24 and space.layers[0].c_in == 24 and space.layers[-1].c_out == 432
    assert space.head.channels == 1728


@pytest.mark.parametrize(
    "knobs,match",
    [
        ({"width_mult": 0}, r"space_args.width_mult: got 0, expected a number > 0"),
        ({"activation": "gelu"}, r"activation: got 'gelu', expected one of relu, relu6, hswish"),
        ({"input_size": [3, 224]}, r"input_size: got \[3, 224\], expected a list \[channels, height, width\]"),
        ({"num_classes": True}, r"num_classes: got True, expected an integer >= 1"),
        ({"depth": 3}, r"unknown knob 'depth'; expected one of input_size"),
        ({"stage_channels": [8, 8]}, r"stage_channels: got 2 widths, expected 6"),
    ],
)
def test_bad_knobs(knobs, match):
    with pytest.raises(SpaceError, match=match):
        load_space("fairnas", **knobs)


def test_unknown_space():
    with pytest.raises(SpaceError, match=r"space 'fbnet_x' is neither a built-in space \(cnas, darts, fairnas, fbnet"):
        load_space("fbnet_x")


USER_SPACE = """
name: tiny
knobs: {input_size: [3, 16, 16], num_classes: 4}
stem: [{op: conv_k3, channels: 8, stride: 2}]
candidates: [ir_k3_e3, ir_k5_e3, zero]
stages:
  - {channels: 16, layers: 2, stride: 2, overrides: {0: [ir_k3_e3, skip]}}
  - {channels: 16, layers: 1, candidates: [shuffle_k3, zero]}
head: {op: conv_k1, channels: 32}
"""


def test_user_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(USER_SPACE)
    space = load_space(str(path))
    assert space.name == "tiny" and space.origin == str(path)
    assert [layer.candidates for layer in space.layers] == [
        ("ir_k3_e3", "skip"),
        ("ir_k3_e3", "ir_k5_e3", "zero"),
        ("shuffle_k3", "zero"),
    ]
    assert space.head.input_hw == (4, 4)


def test_user_yaml_extends_a_builtin(tmp_path):
    path = tmp_path / "narrow_fbnet.yaml"
    path.write_text("extends: fbnet\nname: narrow\nknobs: {width_mult: 0.5}\ncandidates: [ir_k3_e1, skip]\n")
    space = load_space(str(path))
    assert space.num_layers == 22 and space.layers[-1].c_out == 176
    assert space.knobs["activation"] == "relu" and space.layers[3].candidates == ("ir_k3_e1", "skip")


@pytest.mark.parametrize(
    "text,match",
    [
        ("stages: [", "not valid YAML"),
        ("- 1\n- 2", "expected a mapping at the top level"),
        ("candidates: [skip]\nstages: []", r"stages: got \[\], expected a non-empty list"),
        (
            "candidates: [skip]\nstages: [{channels: 8, layers: 0}]",
            r"stages\[0\].layers: got 0, expected a positive integer",
        ),
        ("stages: [{channels: 8, layers: 1}]", "no 'candidates' here and no space-wide 'candidates'"),
        ("candidates: [ir_k4_e1]\nstages: [{channels: 8, layers: 1}]", r"stages\[0\] layer 0: op 'ir_k4_e1': kernel 4"),
        (
            "candidates: [zero]\nstages: [{channels: 8, layers: 1, stride: 2}]",
            r"layer 0: op 'zero' cannot be used here",
        ),
        ("candidates: [skip]\nstages: [{channels: 8, layers: 2, overrides: {5: [skip]}}]", r"overrides: got 5"),
        ("candidates: [skip, skip]\nstages: [{channels: 8, layers: 1}]", "repeat an op"),
        ("knobs: {dropout: 2}\ncandidates: [skip]\nstages: [{channels: 8, layers: 1}]", r"knobs.dropout: got 2"),
    ],
)
def test_bad_space_files(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpaceError, match=match) as info:
        load_space(str(path))
    assert "\n" not in str(info.value)
