"""Issue 14: inputs that ended in a Python exception, or were accepted, now get one line and exit 2."""

import time
from pathlib import Path

import pytest
import yaml

from hwnas.cli import main
from hwnas.engine.config import TrainConfig, keys
from hwnas.errors import SpaceError
from hwnas.strategies.config import (
    DartsConfig,
    DnasConfig,
    EvolutionConfig,
    ParetoConfig,
    RandomSearchConfig,
    SupernetConfig,
)


def refused(capsys, *argv: str) -> str:
    """Run the CLI in-process; assert exit 2 and one line on stderr; return that line."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_cell_space_of_none_only_is_refused(tmp_path, capsys):
    path = write(tmp_path / "none.yaml", "name: nothing\nkind: cell\nknobs: {ops: [none]}\n")
    assert "at least one op besides none" in refused(capsys, "spaces", path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\nextends: fbnet_small\nname: y\n", "duplicate key 'name'"),
        ("name: x\nextends: fbnet_small\ncolour: red\n", "unknown key 'colour'"),
        ("name: x\nkind: cell\nstages: [{channels: 8, layers: 1}]\n", "unknown key 'stages' in a cell space"),
        ("name: x\nkind: cell\nsearch_defaults: {epochs: -3}\n", "search_defaults: epochs: got -3"),
        ("name: x\nextends: fbnet_small\nknobs: {width_mult: .inf}\n", "width_mult: got inf"),
        ("name: x\nextends: fbnet_small\nknobs: {num_classes: 1000000000000000}\n", "num_classes"),
        ("name: x\nextends: fbnet_small\nknobs: {input_size: [3, 1000000000000, 8]}\n", "input_size"),
        (
            "name: x\nextends: fbnet_small\nstages: [{channels: 100000000000, layers: 1}]\n",
            "channels, expected at most",
        ),
        ("name: x\nextends: fbnet_small\nknobs: {num_classes: " + "9" * 5000 + "}\n", "thousands of digits"),
        ("name: x\nknobs: " + "[" * 100_000 + "\n", "nested"),
    ],
)
def test_bad_space_files(tmp_path, capsys, text, message):
    assert message in refused(capsys, "spaces", write(tmp_path / "s.yaml", text))


def test_utf16_space_file(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nextends: fbnet_small\n", encoding="utf-16")
    assert "UTF-16" in refused(capsys, "spaces", str(path))


def test_search_defaults_checked_before_a_search(tmp_path, monkeypatch):
    import hwnas

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match="search_defaults: epochs: got -3"):
        hwnas.search(write(tmp_path / "s.yaml", "name: x\nkind: cell\nsearch_defaults: {epochs: -3}\n"))
    assert not (tmp_path / "runs").exists()


def test_duplicate_keys_refused_in_configs(tmp_path, capsys):
    path = write(tmp_path / "c.yaml", "epochs: 2\nepochs: 3\n")
    assert "duplicate key 'epochs'" in refused(capsys, "train", "fbnet_a", "--config", path)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["profile", "fbnet_a", "--threads", "0"], "--threads"),
        (["profile", "fbnet_a", "--batch", "0"], "--batch"),
        (["profile", "fbnet_a", "--input", "1x100000x100000"], "at most 8192"),
        (["latency", "validate", "fbnet_small", "--samples", "0"], "--samples"),
        (["train", "fbnet_a", "--seed", "-1"], "seed: got -1"),
        (["train", "fbnet_a", "--input", "3x100000x100000"], "input"),
        (["train", "fbnet_a", "--batch-size", "1000000000000000"], "batch_size"),
        (["search", "fbnet_small", "--alpha", "-1"], "alpha"),
        (["train", "fbnet_a", "--threads", "0"], "threads: got 0, expected an integer in 1..1024"),
        (["search", "fbnet_small", "--threads", "1025"], "threads: got 1025"),
        (["supernet", "train", "fbnet_small", "--threads", "x"], "--threads: invalid int value: 'x'"),
    ],
)
def test_bad_flags(capsys, argv, message):
    assert message in refused(capsys, *argv)


def test_run_dir_naming_a_file(tmp_path, capsys):
    path = write(tmp_path / "taken", "x")
    assert "run_dir" in refused(capsys, "train", "fbnet_a", "--run-dir", path, "--epochs", "1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_arch_file_in_utf16_and_deep_json(tmp_path, capsys):
    (tmp_path / "a.json").write_text('{"format": "hwnas.arch/1"}', encoding="utf-16")
    assert "UTF-16" in refused(capsys, "show", str(tmp_path / "a.json"))
    write(tmp_path / "b.json", "[" * 100_000)
    assert "nested" in refused(capsys, "profile", str(tmp_path / "b.json"))
    write(tmp_path / "c.json", '{"format": ' + "7" * 5000 + "}")
    assert "digits" in refused(capsys, "train", str(tmp_path / "c.json"))


def test_search_resume_of_a_train_run_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    import hwnas.cost.build as build

    def no_table(*args, **kwargs):
        raise AssertionError("measured a cost table before refusing")

    monkeypatch.setattr(build, "time_interleaved", no_table)
    run = tmp_path / "trained"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({**TrainConfig().to_dict(), "run_dir": str(run)}))
    start = time.time()
    assert "is a `hwnas train` run" in refused(capsys, "search", "--resume", str(run))
    assert time.time() - start < 30
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_strict_loader_keeps_aliases():
    from hwnas.readers import load_yaml_text

    assert load_yaml_text("a: &x [1, 2]\nb: *x\n", "t") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    "cls", [TrainConfig, SupernetConfig, DnasConfig, RandomSearchConfig, EvolutionConfig, ParetoConfig, DartsConfig]
)
def test_every_numeric_option_has_a_check(cls):
    unchecked = [
        name
        for name, f in keys(cls).items()
        if any(t in str(f.type) for t in ("int", "float")) and "check" not in f.metadata
    ]
    assert unchecked == []


def test_rgb_data_for_a_one_channel_network_is_refused_before_any_file(tmp_path, capsys):
    from tests.fake_data import write_cifar
    from tests.helpers import tiny_arch

    root = write_cifar(tmp_path / "cifar")
    run = tmp_path / "run"
    args = ["train", tiny_arch(tmp_path), "--data", f"cifar10:{root}", "--input", "1x8x8", "--run-dir", str(run)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 channels, the network expects 1" in err
    assert not run.exists()
