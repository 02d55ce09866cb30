"""Issue 22: the library tells a Python caller what the command line tells its user (HwnasWarning, once), and bad
input from Python is one clear error with nothing written, as from the command line."""

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import hwnas
from hwnas.blocks import OpFamily, isolated_registry
from hwnas.cli import main
from tests.helpers import FAST, TINY_SPACE, tiny_arch

ROOT = Path(__file__).resolve().parents[1]
SEARCH = {"cost": "macs", "batch_size": 64, **FAST}  # MACs: no latency table to measure


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)


def hwnas_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, hwnas.HwnasWarning)]


def digits_like(n: int, classes: int, shape=(1, 8, 8)) -> TensorDataset:
    """`n` random images with labels 0..classes-1 in turn."""
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, *shape, generator=g), torch.arange(n) % classes)


STILL = {"epochs": 1, "weight_warmup_epochs": 0, "arch_lr": 1e-30}  # θ steps, but does not move


@pytest.mark.slow
def test_a_python_search_whose_theta_did_not_move_warns_once():
    with pytest.raises(hwnas.HwnasError, match="would never train"):  # all of it warm-up: refused up front
        hwnas.search("tiny.yaml", epochs=1, run_dir="refused", **SEARCH)
    assert not Path("refused").exists()
    with pytest.warns(hwnas.HwnasWarning, match="did not move") as record:
        found = hwnas.search("tiny.yaml", run_dir="short", **STILL, **SEARCH)
    theta = [w for w in record if "did not move" in str(w.message)]
    assert [str(w.message) for w in theta] == [found.summary["theta_health"]["message"]]
    assert theta[0].filename == __file__  # attributed to the caller's line, not to hwnas's insides
    assert json.loads(Path("short/result.json").read_text())["theta_health"]["healthy"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error", hwnas.HwnasWarning)
        with pytest.raises(hwnas.HwnasWarning, match="did not move"):
            hwnas.search("tiny.yaml", run_dir="short_error", **STILL, **SEARCH)


@pytest.mark.slow
def test_the_command_line_shows_the_warning_once_on_stderr(capsys):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        argv = ["search", "tiny.yaml", "--epochs", "1", "--weight-warmup-epochs", "0", "--arch-lr", "1e-30"]
        argv += ["--cost", "macs", "--batch-size", "64", "--no-flip", "--crop-padding", "0", "--no-progress"]
        assert main([*argv, "--run-dir", "cli"]) == 0
    err = capsys.readouterr().err
    assert err.count("did not move") == 1 and "hwnas: warning: architecture parameters" in err
    assert hwnas_warnings(record) == []  # shown as its log line only, not also by Python's warning printer


@pytest.mark.slow
def test_a_darts_search_whose_alpha_never_moved_and_missed_its_target_warns():
    options = {"input": "3x8x8", "init_channels": 4, "layers": 3, "num_meta_node": 2, "batch_size": 16}
    options.update(eval_init_channels=4, eval_layers=3, cost="macs", workers=0, data=digits_like(64, 10), **FAST)
    with pytest.raises(hwnas.HwnasError, match="the cheapest costs") as info:
        hwnas.search("darts", target=1e-6, **options)
    cheapest = float(re.search(r"the cheapest costs ([0-9.e+-]+)", str(info.value)).group(1))
    with pytest.warns(hwnas.HwnasWarning) as record:
        found = hwnas.search("darts", target=cheapest * 1.002, **STILL, run_dir="d", **options)
    messages, health = hwnas_warnings(record), found.summary["alpha_health"]
    assert "did not move" in health["message"] and health["message"] in messages
    assert any("above --target" in m and "the target is not met" in m for m in messages)
    assert found.summary["target"]["use"] > 1


def test_a_python_caller_gets_a_warning_on_stderr_once_without_logging_set_up():
    """Without a handler on the `hwnas` logger, logging's last-resort handler would print the line a second time."""
    code = "import hwnas.log\nhwnas.log.warn_user('the search did not search')\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.count("the search did not search") == 1, proc.stderr
    assert "HwnasWarning: the search did not search" in proc.stderr and "hwnas: warning" not in proc.stderr


def wide(c_in: int, c_out: int, stride: int, cfg) -> nn.Module:
    """An op with twice the channels its layer passes on."""
    return nn.Conv2d(c_in, 2 * c_out, 3, stride, 1)


def test_an_op_of_the_wrong_output_shape_is_refused_when_its_space_loads(tmp_path, capsys):
    (tmp_path / "wide.yaml").write_text(TINY_SPACE.replace("[ir_k3_e3, ir_k5_e3, skip]", "[ir_k3_e3, wide, skip]"))
    before = sorted(p.name for p in tmp_path.iterdir())
    with isolated_registry():
        hwnas.register_op("wide")(wide)
        with pytest.raises(hwnas.HwnasError) as info:
            hwnas.load_space("wide.yaml")
        message = str(info.value)
        assert "'wide'" in message and "stages[0] layer 0" in message and "\n" not in message
        assert "maps a 8x8x8 input to 32x4x4; expected 16x4x4" in message
        with pytest.raises(hwnas.HwnasError, match="'wide' maps"):
            hwnas.search("wide.yaml", epochs=1, run_dir="refused", **SEARCH)
        assert main(["search", "wide.yaml", "--epochs", "1", "--run-dir", "refused"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "expected 16x4x4" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run directory, no .lock, no config.yaml


def test_a_registered_family_and_a_cell_op_are_checked_too():
    family = OpFamily(
        name="halving",
        grammar="halving_{N}",
        pattern=re.compile(r"halving_(?P<n>\d+)"),
        build=lambda params, c_in, c_out, stride, cfg: nn.Conv2d(c_in, c_out, 3, 2 * stride, 1),
    )
    with isolated_registry():
        hwnas.register_family(family)
        layerwise = TINY_SPACE.replace("[ir_k3_e3, ir_k5_e3, skip]", "[ir_k3_e3, halving_1]")
        Path("halving.yaml").write_text(layerwise)
        with pytest.raises(hwnas.HwnasError, match=r"'halving_1' maps a 8x8x8 input to 16x2x2; expected 16x4x4"):
            hwnas.load_space("halving.yaml")
        with pytest.raises(hwnas.HwnasError, match=r"cell 0 \(4 channels\): op 'halving_1' maps a 4x8x8 input"):
            hwnas.load_space("darts", input_size=[1, 8, 8], init_channels=4, layers=3, nodes=2, ops=["halving_1"])

        class Gated(nn.Module):
            """Right shapes, but code meta tensors cannot run (a value read back): checked on the CPU instead."""

            def __init__(self, c_in: int, c_out: int, stride: int) -> None:
                super().__init__()
                self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                y = self.conv(x)
                return y if float(y.sum()) >= 0 else -y

        hwnas.register_op("data_dependent")(lambda c_in, c_out, stride, cfg: Gated(c_in, c_out, stride))
        Path("ok.yaml").write_text(TINY_SPACE.replace("[ir_k3_e3, ir_k5_e3, skip]", "[ir_k3_e3, data_dependent]"))
        state = torch.random.get_rng_state()
        assert hwnas.load_space("ok.yaml").layers[0].candidates == ("ir_k3_e3", "data_dependent")
        assert torch.equal(torch.random.get_rng_state(), state)  # loading a space draws no random numbers


@pytest.mark.slow
def test_a_users_images_of_another_size_are_refused_unless_a_size_is_asked_for(tmp_path):
    network = hwnas.Architecture.load(tiny_arch(tmp_path)).with_space_args(input_size=[3, 32, 32])
    data = digits_like(96, 10)
    with pytest.raises(hwnas.HwnasError) as info:
        hwnas.train(network, data=data, epochs=1, run_dir="refused", **FAST)
    assert str(info.value).startswith("the dataset's images are 1x8x8, the network's input is 3x32x32; give input=")
    assert not Path("refused").exists()
    with pytest.warns(hwnas.HwnasWarning, match=r"data reshaped: the dataset's 1x8x8 images are resized to 3x16x16"):
        resized = hwnas.train(network, data=data, input="3x16x16", epochs=1, batch_size=32, run_dir="resized", **FAST)
    assert list(hwnas.Architecture.load(resized.arch_path).spec.input_size) == [3, 16, 16]
    with warnings.catch_warnings():
        warnings.simplefilter("error", hwnas.HwnasWarning)  # its own size: no warning
        hwnas.train(network, data=data, input="1x8x8", epochs=1, batch_size=32, run_dir="own", **FAST)


@pytest.mark.slow
def test_labels_that_imply_other_classes_than_the_network_has_are_refused(tmp_path):
    network = tiny_arch(tmp_path)  # 10 classes
    fifteen = digits_like(90, 15)
    with pytest.raises(hwnas.HwnasError, match="DataPools hold their own test pool"):  # not silently left out
        hwnas.train(network, data=hwnas.pools_from_datasets(fifteen, classes=15), val_data=fifteen, run_dir="refused")
    with pytest.raises(hwnas.HwnasError) as info:
        hwnas.train(network, data=fifteen, epochs=1, run_dir="refused", **FAST)
    message = str(info.value)
    assert "largest label is 14, so 15 classes; the network has 10" in message
    assert "pools_from_datasets(data, classes=15)" in message and "\n" not in message
    assert not Path("refused").exists()
    fifteen.classes = [f"c{i}" for i in range(15)]  # named classes define the classifier
    named = hwnas.train(network, data=fifteen, epochs=1, batch_size=30, run_dir="named", **FAST)
    assert hwnas.Architecture.load(named.arch_path).spec.knobs["num_classes"] == 15


@pytest.mark.slow
def test_a_data_spec_resized_to_a_size_nobody_asked_for_warns(tmp_path, caplog):
    (tmp_path / "tiny12.yaml").write_text(TINY_SPACE.replace("[1, 8, 8]", "[1, 12, 12]"))  # the space's default
    network = hwnas.Architecture.from_space(hwnas.load_space(str(tmp_path / "tiny12.yaml")), ["skip"] * 3)
    network = network.with_space_args(num_classes=3)
    reshaped = r"data reshaped: --data digits holds 1x8x8 images, resized to 1x12x12"
    with pytest.warns(hwnas.HwnasWarning, match=reshaped), caplog.at_level("INFO", logger="hwnas"):
        hwnas.train(network, epochs=1, batch_size=128, run_dir="digits", **FAST)
    assert "the classifier has the data's 10 classes (the architecture declares 3)" in caplog.text
    fitted = network.with_space_args(input_size=[1, 12, 12])  # a file that records its size, as runs write them
    with warnings.catch_warnings():
        warnings.simplefilter("error", hwnas.HwnasWarning)
        hwnas.train(network, epochs=1, batch_size=128, input="1x12x12", run_dir="asked", **FAST)
        hwnas.train(fitted, epochs=1, batch_size=128, run_dir="fitted", **FAST)


@pytest.mark.slow
def test_every_function_taking_an_architecture_takes_a_path_or_a_zoo_name(tmp_path):
    path = tiny_arch(tmp_path)
    for arch in (path, Path(path), hwnas.Architecture.load(path)):
        assert hwnas.profile_arch(arch).macs == hwnas.profile_arch(path).macs > 0
    report = hwnas.export_model(Path(path), tmp_path / "tiny.pt2", fmt="export")
    assert report["max_abs_diff"] <= 1e-4 and (tmp_path / "tiny.pt2").is_file()
    assert hwnas.measure_latency(path, warmup=1, min_run_time=0.01).min_ms > 0
    assert hwnas.measure_latency("mobilenet_v2", warmup=1, min_run_time=0.01).batch == 1
    with pytest.raises(hwnas.HwnasError, match="give input_shape"):
        hwnas.measure_latency(nn.Identity())
    supernet = hwnas.Supernet(hwnas.Architecture.load(path).spec)
    by_path = hwnas.extract_model(supernet, Path(path)).state_dict()
    by_choices = hwnas.extract_model(supernet, hwnas.Architecture.load(path).choices).state_dict()
    assert by_path.keys() == by_choices.keys() and all(torch.equal(by_path[k], by_choices[k]) for k in by_path)
    with pytest.raises(hwnas.HwnasError, match="not a path of the supernet"):
        hwnas.extract_model(supernet, "mobilenet_v2")
