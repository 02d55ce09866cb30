import json
import subprocess
import sys

import pytest

from hwnas import zoo
from hwnas.arch import Architecture
from hwnas.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ["zoo", "spaces", "show", "profile", "export"]:
        assert command in result.stdout


def test_help_starts_without_torch():
    script = (
        "import runpy, sys\n"
        "try:\n    runpy.run_module('hwnas', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'matplotlib')))"
    )
    result = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True, text=True, timeout=60)
    assert "usage: hwnas" in result.stdout and result.stdout.strip().endswith("[]"), result.stdout[-500:]


def test_profile_json(capsys):
    assert main(["profile", "mobilenet_v2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["params"], result["macs"]) == (3_504_872, 300_774_272)


def test_profile_input_override_and_latency(capsys):
    assert main(["profile", "spos", "--input", "3x64x64", "--latency", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input"] == [3, 64, 64] and result["latency"]["median_ms"] > 0 and result["latency"]["threads"] == 1


def test_profile_of_a_file(tmp_path, capsys):
    path = Architecture.from_zoo("fairnas_c").save(tmp_path / "c.json")
    assert main(["profile", str(path)]) == 0
    assert "4,397,864 params" in capsys.readouterr().out


def test_show_prints_the_layer_table(capsys):
    assert main(["show", "proxylessnas_gpu"]) == 0
    out = capsys.readouterr().out
    assert "layers.1   zero" in out and "total" in out and "7,119,848" in out


@pytest.mark.slow
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


@pytest.mark.slow
def test_export_onnx(tmp_path, capsys):
    out = tmp_path / "spos.onnx"
    assert main(["export", "spos", "--format", "onnx", "--input", "3x32x32", "-o", str(out), "--json"]) == 0
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
def test_usage_errors_are_one_line_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_file_is_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "hwnas.arch/1", "space": "fbnet", "choices": ["skip"] * 21}))
    assert main(["export", str(bad), "--format", "onnx", "-o", str(tmp_path / "out.onnx")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "choices: got 21 entries, expected 22" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


@pytest.mark.slow
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


def help_sections(capsys, *argv: str) -> dict[str, dict[str, str]]:
    """`hwnas ARGV --help` as {section title: {first flag: its whole entry, wrapped lines joined}}."""
    assert main([*argv, "--help"]) == 0
    sections: dict[str, dict[str, str]] = {}
    title = flag = None
    for line in capsys.readouterr().out.splitlines():
        if line and not line.startswith(" "):
            title, flag = line.rstrip(":"), None
            sections[title] = {}
        elif line.startswith("  -") and title is not None:
            flag = line.split()[0].rstrip(",")
            sections[title][flag] = line.strip()
        elif flag is not None and line.strip():
            sections[title][flag] += " " + line.strip()
    return sections


COMMON_GROUPS = ["network", "training", "data", "run"]


@pytest.mark.parametrize(
    ("argv", "groups", "placed"),
    [
        (
            ["train"],
            COMMON_GROUPS,
            {"--epochs": "training", "--threads": "run", "--input": "data", "--head": "network"},
        ),
        (
            ["search"],
            [
                "search",
                "dnas (FBNet)",
                "architecture parameters: θ (dnas), α (darts)",
                "hardware cost (dnas, darts)",
                "random, evolution, pareto (over a trained supernet)",
                "random",
                "evolution, pareto",
                "pareto",
                "hard limits (supernet training; random, evolution, pareto)",
                "latency measurement",
                *COMMON_GROUPS,
            ],
            {
                "--strategy": "search",
                "--mode": "dnas (FBNet)",
                "--generation-num": "evolution, pareto",
                "--target": "hardware cost (dnas, darts)",
                "--latency-threads": "latency measurement",
                "--threads": "run",
            },
        ),
        (
            ["search", "darts"],
            [
                "search",
                "darts: search network (DARTS, CNAS, PC-DARTS)",
                "architecture parameters: θ (dnas), α (darts)",
                "darts: genotype and evaluation network",
                "hardware cost (dnas, darts)",
                "latency measurement",
                *COMMON_GROUPS,
            ],
            {
                "--layers": "darts: search network (DARTS, CNAS, PC-DARTS)",
                "--arch-lr": "architecture parameters: θ (dnas), α (darts)",
                "--use-sparse": "darts: genotype and evaluation network",
                "--epochs": "training",
            },
        ),
        (
            ["supernet", "train"],
            [
                "one-shot supernet (SPOS, FairNAS, sandwich)",
                "hard limits (supernet training; random, evolution, pareto)",
                "latency measurement",
                *COMMON_GROUPS,
            ],
            {
                "--sampling": "one-shot supernet (SPOS, FairNAS, sandwich)",
                "--max-macs": "hard limits (supernet training; random, evolution, pareto)",
                "--threads": "run",
            },
        ),
    ],
)
def test_help_groups_the_options_and_says_each_default_once(capsys, argv, groups, placed):
    sections = help_sections(capsys, *argv)
    assert [t.removesuffix(" options") for t in sections if t.endswith(" options")] == groups
    for title in (f"{g} options" for g in groups):
        for entry in sections[title].values():
            assert entry.count("default") == 1, entry
    for flag, group in placed.items():
        assert flag in sections[f"{group} options"], (flag, group)


def test_help_shows_each_commands_own_defaults(capsys):
    assert "(default: 10)" in help_sections(capsys, "train")["training options"]["--epochs"]
    assert "(default: 50)" in help_sections(capsys, "search", "darts")["training options"]["--epochs"]
    assert "(default: on, but off for digits and fonts" in help_sections(capsys, "train")["data options"]["--flip"]


def test_threads_is_an_option_of_runs_and_stays_the_measuring_threads_of_profile_and_latency():
    from hwnas.cli import build_parser
    from hwnas.engine.config import TrainConfig, resolve_config
    from hwnas.strategies.config import DnasConfig, SupernetConfig
    from hwnas.strategies.registry import strategy

    parser = build_parser(strategy("dnas"))
    for argv, cls in (
        (["train", "fbnet_a"], TrainConfig),
        (["search", "fbnet_small"], DnasConfig),
        (["supernet", "train", "fbnet_small"], SupernetConfig),
    ):
        assert resolve_config(parser.parse_args(argv), cls=cls).threads is None  # PyTorch's own choice
        assert resolve_config(parser.parse_args([*argv, "--threads", "3"]), cls=cls).threads == 3
    args = parser.parse_args(["search", "fbnet_small", "--latency-threads", "2", "--threads", "3"])
    cfg = resolve_config(args, cls=DnasConfig)
    assert (cfg.latency_threads, cfg.threads) == (2, 3)
    assert parser.parse_args(["profile", "fbnet_a", "--latency", "--threads", "4"]).threads == 4
    assert parser.parse_args(["latency", "fbnet_small", "--threads", "4"]).threads == 4


def test_search_options_follow_the_strategy_the_space_or_the_resumed_run(tmp_path):
    from hwnas.cli import search_strategy
    from hwnas.strategies.config import DartsConfig, DnasConfig, EvolutionConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("space: cnas\nstrategy: darts\n")
    config = tmp_path / "evolution.yaml"
    config.write_text("strategy: evolution\n")
    assert search_strategy(["--debug", "search", "darts", "--epochs", "1"]).options is DartsConfig
    assert search_strategy(["search", "fbnet_small"]).options is DnasConfig
    assert search_strategy(["search", "fbnet_small", "--strategy", "evolution"]).options is EvolutionConfig
    assert search_strategy(["search", "fbnet_small", "--config", str(config)]).options is EvolutionConfig
    assert search_strategy(["search", "--resume", str(run)]).options is DartsConfig
    assert search_strategy(["search", f"--resume={run / 'checkpoints' / 'epoch_001.pt'}"]).options is DartsConfig
    assert search_strategy(["search", "--resume"]).options is DnasConfig  # the full parser refuses it
    assert search_strategy(["train", "search"]) is None
