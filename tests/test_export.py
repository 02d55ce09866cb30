import io
import json
import random

import onnx
import onnxruntime
import pytest
import torch

from hwnas.arch import Architecture
from hwnas.errors import HwnasError
from hwnas.export import export
from hwnas.model import build_model
from hwnas.spaces import load_space
from tests.helpers import random_choices, tiny_arch


@pytest.fixture
def arch() -> Architecture:
    space = load_space("fbnet_cifar")
    return Architecture.from_space(space, random_choices(space, random.Random(3)))


def trained_weights(arch: Architecture, path) -> torch.nn.Module:
    model = build_model(arch)
    with torch.no_grad():
        model.train()(torch.randn(8, 3, 32, 32))  # move BN statistics off their defaults
    torch.save({"model": model.state_dict(), "epoch": 3}, path)
    return model.eval()


@pytest.mark.slow
def test_onnx_matches_pytorch(tmp_path, arch):
    model = trained_weights(arch, tmp_path / "w.pt")
    report = export(arch, tmp_path / "m.onnx", fmt="onnx", weights=tmp_path / "w.pt")
    assert report["max_abs_diff"] <= 1e-4
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)  # a batch size the export never saw
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    with torch.no_grad():
        assert (got - model(x)).abs().max() <= 1e-4


@pytest.mark.slow
def test_torchscript_matches_pytorch(tmp_path, arch):
    model = trained_weights(arch, tmp_path / "w.pt")
    export(arch, tmp_path / "m.ts", fmt="torchscript", weights=tmp_path / "w.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(tmp_path / "m.ts"))(x), model(x), atol=1e-5)


def test_weights_that_do_not_fit_write_nothing(tmp_path, arch):
    other = Architecture.from_space(arch.spec, ["ir_k5_e6"] * 22)
    trained_weights(other, tmp_path / "w.pt")
    with pytest.raises(HwnasError, match=r"weights .*w.pt: do not fit this architecture"):
        export(arch, tmp_path / "m.onnx", fmt="onnx", weights=tmp_path / "w.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def tiny_cells() -> Architecture:
    knobs = {"init_channels": 4, "layers": 3, "input_size": [3, 16, 16], "num_classes": 5, "auxiliary": False}
    return Architecture.from_zoo("darts_v2").with_space_args(**knobs)


@pytest.mark.parametrize("kind", ["layerwise", "cells"])
@pytest.mark.slow
def test_torch_export_program_matches_pytorch_at_any_batch(tmp_path, kind):
    arch = Architecture.load(tiny_arch(tmp_path)) if kind == "layerwise" else tiny_cells()
    model = build_model(arch)
    with torch.no_grad():
        model.train()(torch.randn(4, *arch.spec.input_size))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    report = export(arch, tmp_path / "m.pt2", fmt="export", weights=tmp_path / "w.pt")
    assert report["format"] == "export" and report["max_abs_diff"] <= 1e-4
    assert "(torch.export program, " in report["summary"] and "max |diff| vs PyTorch" in report["summary"]
    program = torch.export.load(io.BytesIO((tmp_path / "m.pt2").read_bytes()))
    x = torch.randn(3, *arch.spec.input_size)  # a batch size the export never saw
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model.eval()(x), atol=1e-5)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_torchscript_is_marked_legacy_and_unknown_formats_are_refused(tmp_path):
    arch = Architecture.load(tiny_arch(tmp_path))
    report = export(arch, tmp_path / "m.ts", fmt="torchscript", verify=False)
    assert report["summary"].startswith(f"wrote {tmp_path / 'm.ts'} (torchscript, legacy; prefer --format export, ")
    with pytest.raises(HwnasError, match=r"export format 'tflite' is not supported; expected onnx, export or torch"):
        export(arch, tmp_path / "m.tflite", fmt="tflite")


@pytest.mark.slow
def test_the_command_line_writes_a_torch_export_program(tmp_path, capsys):
    from hwnas.cli import main

    arch = tiny_arch(tmp_path)
    assert main(["export", arch, "--format", "export", "-o", str(tmp_path / "m.pt2"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "export" and report["max_abs_diff"] <= 1e-4
    program = torch.export.load(io.BytesIO((tmp_path / "m.pt2").read_bytes()))
    x = torch.randn(2, *Architecture.load(arch).spec.input_size)
    assert program.module()(x).shape == (2, 10)
