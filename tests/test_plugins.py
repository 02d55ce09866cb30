"""Users' own candidate ops: `register_op`, `register_family`, and plugin packages found through the entry-point
group `hwnas.blocks`, used by a space and a DNAS (FBNet) search like built-in ops."""

import json
import re
import sys
import textwrap

import pytest
import torch
from torch import nn

from hwnas.arch import Architecture
from hwnas.blocks import (
    BlockConfig,
    OpFamily,
    build_block,
    check_op,
    grammar,
    isolated_registry,
    parse_op,
    register_family,
    register_op,
    registered_families,
    same_shape,
)
from hwnas.cli import main
from hwnas.errors import HwnasError, OpNameError
from hwnas.model import build_model

PLUGIN = "hwnas_plugin_demo"


@pytest.fixture(autouse=True)
def _registry_undone():
    """Registrations and plugins of a test never reach the next one (pytest runs every file in one process)."""
    with isolated_registry():
        yield
    for name in [m for m in sys.modules if m == PLUGIN or m.startswith(PLUGIN + ".")]:
        del sys.modules[name]


def _kernel(groups: dict) -> dict:
    kernel = int(groups["k"])
    if kernel % 2 == 0:
        raise ValueError(f"kernel {kernel} is not odd")
    return {"kernel": kernel}


MYCONV = OpFamily(
    name="myconv",
    grammar="myconv_k{K} (K odd)",
    pattern=re.compile(r"myconv_k(?P<k>\d+)"),
    parse=_kernel,
    build=lambda p, c_in, c_out, stride, cfg: nn.Conv2d(c_in, c_out, p["kernel"], stride, p["kernel"] // 2),
)


def test_register_op_decorator_builds_a_fixed_op():
    def dw3(c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, groups=c_in), nn.BatchNorm2d(c_out, eps=cfg.bn_eps))

    assert register_op("demo_dw3", check=same_shape)(dw3) is dw3
    block = build_block("demo_dw3", 8, 8, 1, BlockConfig(bn_eps=1e-3))
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 8, 5, 5) and block[1].eps == 1e-3
    assert parse_op("demo_dw3").params == {} and "demo_dw3" in grammar()
    with pytest.raises(OpNameError, match="'demo_dw3' cannot be used here: it keeps the input shape"):
        check_op("demo_dw3", 8, 16, 2)


def test_register_family_parses_checks_and_builds_its_names():
    assert register_family(MYCONV) is MYCONV
    assert parse_op("myconv_k5").params == {"kernel": 5} and parse_op("myconv_k5").family is MYCONV
    assert build_block("myconv_k5", 4, 8, 2)(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)
    with pytest.raises(OpNameError, match=r"op 'myconv_k4': kernel 4 is not odd; expected myconv_k\{K\}"):
        parse_op("myconv_k4")
    assert registered_families()[-1] is MYCONV


def test_a_factory_that_returns_no_module_is_named():
    register_op("not_a_module")(lambda c_in, c_out, stride, cfg: "conv")
    with pytest.raises(OpNameError, match=r"'not_a_module' built a str \(family 'not_a_module'\); expected an nn\."):
        build_block("not_a_module", 4, 4, 1)


@pytest.mark.parametrize(
    "register, message",
    [
        (lambda: register_op("skip")(nn.Identity), "op 'skip' is already taken by family 'skip' (skip)"),
        (lambda: register_op("sep_conv_3x3")(nn.Identity), "op 'sep_conv_3x3' is already taken by family 'cell'"),
        (
            lambda: register_family(
                OpFamily("conv2", "conv_k{K}", re.compile(r"conv_k(?P<k>\d+)"), lambda *a: nn.Identity())
            ),
            "cannot register 'conv2' (conv_k{K}): op 'conv_k3' is already taken by family 'conv' (conv_k{K} (K odd))",
        ),
        (  # a pattern wider than its grammar still collides with the built-in names it accepts
            lambda: register_family(OpFamily("greedy", "anything", re.compile(r".*"), lambda *a: nn.Identity())),
            "op 'ir_k3_e3' is already taken by family 'inverted_residual'",
        ),
        (
            lambda: register_family(OpFamily("conv", "myconv", re.compile("myconv"), lambda *a: nn.Identity())),
            "cannot register 'conv' (myconv): a family of that name is already registered (conv_k{K} (K odd))",
        ),
        (lambda: register_op("my-op"), "op name 'my-op' is not valid; expected letters, digits and _"),
    ],
)
def test_a_name_already_taken_is_refused_in_one_line(register, message):
    before = registered_families()
    with pytest.raises(OpNameError) as refused:
        register()
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert registered_families() == before and parse_op("skip").family.name == "skip"


def test_registering_twice_is_refused():
    register_family(MYCONV)
    with pytest.raises(OpNameError, match="op 'myconv_k3' is already taken by family 'myconv'"):
        register_family(MYCONV)


def test_an_unknown_op_lists_the_custom_grammars_too():
    register_family(MYCONV)
    register_op("demo_dw3", grammar="demo_dw3 (depthwise 3x3)")(nn.Identity)
    with pytest.raises(OpNameError) as unknown:
        parse_op("myconv3")
    assert "unknown op 'myconv3'" in str(unknown.value)
    assert "myconv_k{K} (K odd)" in str(unknown.value) and "demo_dw3 (depthwise 3x3)" in str(unknown.value)
    assert "ir_k{K}_e{E}" in str(unknown.value)


def test_registrations_are_undone_at_the_end_of_an_isolated_registry():
    with isolated_registry():
        register_family(MYCONV)
        assert parse_op("myconv_k3").family is MYCONV
    with pytest.raises(OpNameError, match="unknown op 'myconv_k3'"):
        parse_op("myconv_k3")
    assert MYCONV not in registered_families()


PLUGIN_SOURCE = '''
"""A demo op plugin: a cheap depthwise op (one name) and a family of conv stems."""
import re

from torch import nn

from hwnas.blocks import OpFamily, register_op, same_shape


def register():
    @register_op("demo_dw3", check=same_shape)
    def demo_dw3(c_in, c_out, stride, cfg):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_out))


FAMILIES = [
    OpFamily(
        name="demo_stem",
        grammar="demostem_k{K}",
        pattern=re.compile(r"demostem_k(?P<k>\\d+)"),
        parse=lambda groups: {"kernel": int(groups["k"])},
        build=lambda p, c_in, c_out, stride, cfg: nn.Sequential(
            nn.Conv2d(c_in, c_out, p["kernel"], stride, p["kernel"] // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
        ),
    )
]
'''


def install_plugin(root, monkeypatch, source: str = PLUGIN_SOURCE) -> None:
    """Write what `pip install hwnas-plugin-demo` would: the package and its dist-info with the entry points."""
    (root / PLUGIN).mkdir(parents=True)
    (root / PLUGIN / "__init__.py").write_text(textwrap.dedent(source))
    info = root / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hwnas.blocks]\ndw = {PLUGIN}:register\nstems = {PLUGIN}:FAMILIES\n")
    monkeypatch.syspath_prepend(str(root))


# Each layer chooses between the plugin's depthwise op and an inverted residual of 2.8x its MACs, listed first
# (the argmax of an untrained θ); priced by MACs with no target, the FBNet search must take the plugin op.
PLUGIN_SPACE = """
name: plugin_demo
knobs: {input_size: [1, 8, 8], num_classes: 4, dropout: 0.0}
stem: [{op: demostem_k3, channels: 16, stride: 1}]
candidates: [ir_k3_e1, demo_dw3]
stages:
  - {channels: 16, layers: 2, stride: 1}
head: {op: conv_k1, channels: 32}
"""

SEARCH = [
    "--data", "synthetic", "--classes", "4", "--input", "1x8x8", "--epochs", "1", "--weight-warmup-epochs", "0",
    "--batch-size", "128", "--train-portion", "0.5", "--cost", "macs", "--arch-lr", "0.1", "--no-progress", "--no-flip",
    "--crop-padding", "0",
]  # fmt: skip


def test_an_installed_plugin_op_is_searched_built_and_profiled(tmp_path, monkeypatch, capsys):
    install_plugin(tmp_path / "site", monkeypatch)
    space = tmp_path / "plugin_demo.yaml"
    space.write_text(PLUGIN_SPACE)
    run = tmp_path / "run"
    assert main(["search", str(space), *SEARCH, "--run-dir", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    arch = Architecture.load(run / "arch.json")
    assert list(arch.choices) == result["choices"] == ["demo_dw3", "demo_dw3"], result["choices"]
    model = build_model(arch)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    assert main(["profile", str(run / "arch.json"), "--json"]) == 0
    macs = json.loads(capsys.readouterr().out)["macs"]
    stem, dw, head, classifier = 9 * 16 * 64, 9 * 16 * 64, 16 * 32 * 64, 32 * 4
    assert macs == stem + 2 * dw + head + classifier == result["macs"]


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    install_plugin(tmp_path, monkeypatch, source="import hwnas_missing_dependency\n")
    with pytest.raises(HwnasError) as broken:
        parse_op("skip")
    message = str(broken.value)
    assert message.startswith("op plugin 'dw' (hwnas_plugin_demo:register, entry-point group hwnas.blocks) failed")
    assert "ModuleNotFoundError: No module named 'hwnas_missing_dependency'" in message and "\n" not in message
    with pytest.raises(HwnasError, match="op plugin 'dw'"):  # every later use says so too, not only the first
        grammar()
    assert main(["profile", "mobilenet_v2", "--json"]) == 2
    err = capsys.readouterr().err
    assert "op plugin 'dw'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_plugin_entry_point_of_the_wrong_kind_is_named(tmp_path, monkeypatch):
    install_plugin(tmp_path, monkeypatch, source="register = 3\nFAMILIES = []\n")
    with pytest.raises(HwnasError) as wrong:
        parse_op("skip")
    assert str(wrong.value).startswith("op plugin 'dw' (hwnas_plugin_demo:register")
    assert "TypeError: it gave an object of type 'int'; expected a module, an OpFamily" in str(wrong.value)
