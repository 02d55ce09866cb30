"""DNAS under a target: the result uses the budget and stays within it; a θ that never moved is reported."""

import json

import pytest

from hwnas.cli import main
from hwnas.cost.build import build_table
from hwnas.spaces import load_space

# Three residual layers choosing between an expensive block and a free skip: under a target of two
# blocks' MACs, the answer is known: two blocks and one skip (budget use ~1.0); one block uses ~0.6.
TOY_SPACE = """
name: toy
knobs: {input_size: [1, 8, 8], num_classes: 10, dropout: 0.0}
stem: [{op: conv_k3, channels: 16, stride: 1}]
candidates: [ir_k3_e6, skip]
stages:
  - {channels: 16, layers: 3, stride: 1}
head: {op: conv_k1, channels: 32}
"""
SEARCH = [
    "--input", "1x8x8", "--epochs", "4", "--weight-warmup-epochs", "1", "--train-portion", "0.5",
    "--no-progress", "--no-flip", "--crop-padding", "0", "--cost", "macs", "--lr", "0.1",
]  # fmt: skip


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_SPACE)
    space = load_space(str(path))
    fixed, rows = build_table(space, measure=False, progress=False).matrix(space, "macs")
    two_blocks = (fixed + 2 * rows[0][0] + rows[0][1]) / 1e6
    return path, two_blocks * 1.005  # a hair above two blocks (cost models hold float32)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gumbel", "gumbel_hard"])
def test_dnas_uses_and_meets_a_macs_budget(toy, tmp_path, capsys, mode):
    path, target = toy
    run = tmp_path / mode
    assert main(["search", str(path), *SEARCH, "--mode", mode, "--target", f"{target:.6f}", "--run-dir", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["choices"].count("ir_k3_e6") == 2, result["choices"]
    assert 0.85 <= result["target"]["use"] <= 1.0
    assert result["theta_health"]["healthy"]


def test_a_theta_that_never_moved_is_reported(toy, tmp_path, capsys):
    path, _ = toy
    run = tmp_path / "still"
    args = ["search", str(path), *SEARCH, "--epochs", "1", "--weight-warmup-epochs", "0", "--arch-lr", "1e-30"]
    assert main([*args, "--run-dir", str(run)]) == 0
    captured = capsys.readouterr()
    health = json.loads(captured.out)["theta_health"]
    assert not health["healthy"] and health["updates"] > 0 and health["max_change"] < 1e-6
    assert "did not move" in captured.err
    assert json.loads((run / "result.json").read_text())["theta_health"]["healthy"] is False


def test_sample_is_refused_for_soft_modes(toy, tmp_path, capsys):
    path, _ = toy
    assert main(["search", str(path), *SEARCH, "--sample", "3", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--mode gumbel_hard" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_temperature_anneals_as_far_as_fbnet_whatever_the_epochs():
    from hwnas.supernet.mixing import temperature_at

    assert temperature_at(8, 5.0, None, 8) == pytest.approx(5.0 * 0.956**90)
    assert temperature_at(90, 5.0, None, 90) == pytest.approx(5.0 * 0.956**90)
    assert temperature_at(3, 5.0, 0.9, 8) == pytest.approx(5.0 * 0.9**3)  # an explicit decay wins
