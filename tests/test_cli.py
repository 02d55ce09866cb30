import json
import subprocess
import sys

import pytest

from hwnas import zoo
from hwnas.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ["zoo", "spaces", "show", "profile", "export"]:
        assert command in result.stdout


def test_profile_json(capsys):
    assert main(["profile", "mobilenet_v2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["params"], result["macs"]) == (3_504_872, 300_774_272)


def test_profile_input_override_and_latency(capsys):
    assert main(["profile", "spos", "--input", "3x64x64", "--latency", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input"] == [3, 64, 64] and result["latency"]["median_ms"] > 0 and result["latency"]["threads"] == 1


def test_profile_of_a_file(tmp_path, capsys):
    path = zoo.load("fairnas_c").save(tmp_path / "c.json")
    assert main(["profile", str(path)]) == 0
    assert "4,397,864 params" in capsys.readouterr().out


def test_show_prints_the_layer_table(capsys):
    assert main(["show", "proxylessnas_gpu"]) == 0
    out = capsys.readouterr().out
    assert "layers.1   zero" in out and "total" in out and "7,119,848" in out


def test_zoo_table(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in zoo.names())
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["macs"] for r in rows}["mobilenet_v2"] == 300_774_272


def test_spaces(capsys):
    assert main(["spaces"]) == 0
    assert "fbnet_cifar" in capsys.readouterr().out
    assert main(["spaces", "proxylessnas"]) == 0
    assert "ir_k7_e6 zero" in capsys.readouterr().out


def test_export_onnx(tmp_path, capsys):
    out = tmp_path / "spos.onnx"
    assert main(["export", "spos", "--format", "onnx", "--input", "3x64x64", "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_diff"] <= 1e-4 and out.is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["profile", "nope"], "architecture 'nope' is neither a zoo model"),
        (["profile", "fbnet_a", "--input", "3x224"], "expected CxHxW"),
        (["export", "fbnet_a", "--format", "tflite", "-o", "x"], "invalid choice: 'tflite'"),
        (["train", "fbnet_a", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["train", "fbnet_a", "--optimizer", "adamw"], "optimizer: got 'adamw', expected one of sgd, adam, rmsprop"),
        (["train", "fbnet_a", "--data", "cifar10:/nowhere"], "/nowhere is not a directory"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_file_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "hwnas.arch/1", "space": "fbnet", "choices": ["skip"] * 21}))
    result = run("export", str(bad), "--format", "onnx", "-o", str(tmp_path / "out.onnx"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "choices: got 21 entries, expected 22" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "profile", "nope")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize(
    ("argv", "answer"),
    [
        (["train", "mobilenet_v2", "--gpu", "0,1"], "torchrun --nproc_per_node N"),
        (["train", "mobilenet_v2", "--multi-gpus"], "torchrun --nproc_per_node N"),
        (["train", "mobilenet_v2", "--load-model-path", "./model"], "--resume RUN_DIR"),
        (["train", "mobilenet_v2", "--model-type=arcface"], "--head softmax|amsoftmax|arcface"),
        (["search", "spos", "--search-strategy", "evolution"], "--strategy random|evolution|pareto"),
        (["search", "spos", "--generation_num", "20"], "--generation-num"),
        (["train", "mobilenet_v2", "--log-frequence", "50"], "--log-every"),
    ],
)
def test_the_original_tools_flags_name_their_hwnas_equivalent(argv, answer, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and answer in err and "'s flag; hwnas has" in err
    assert not any(tmp_path.iterdir())
