"""A user's own search strategy: one module and one registration, selected by name from the command line (an
installed plugin, found through the entry-point group `hwnas.strategies`) and from Python, resumed like a built-in
one, its options refused to other strategies and other strategies' options refused to it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hwnas
from hwnas.cli import main
from hwnas.strategies import registry
from tests.helpers import TINY_SPACE

PLUGIN = "hwnas_toy_strategy"
PLUGIN_SOURCE = '''
"""A toy strategy: every layer takes its candidate number --pick; the network is trained and shipped."""

from dataclasses import dataclass

from hwnas import Architecture, OptionGroup, Outcome, Run, SearchOptions, build_model, load_space, register_strategy
from hwnas.engine.config import integer_in
from hwnas.engine.trainer import Trainer
from hwnas.strategies.config import strategy_field

TOY = OptionGroup("toy")


@dataclass
class ToyConfig(SearchOptions):
    HELP_GROUPS = (TOY, *SearchOptions.HELP_GROUPS)

    strategy: str = strategy_field("toy")
    pick: int = TOY.option("the candidate every layer takes (its index)", 0, **integer_in(0, 64))


@register_strategy("toy", options=ToyConfig, trains="the picked network", picks="candidate --pick everywhere")
def toy(run: Run) -> Outcome:
    cfg = run.cfg
    space = load_space(cfg.space)
    data = run.open_data(space.input_size)
    space = run.fit(space, data)
    directory = run.open_dir(f"toy-{space.name}")
    picked = [layer.candidates[cfg.pick % len(layer.candidates)] for layer in space.layers]
    arch = Architecture.from_space(space, picked)
    trainer = Trainer(build_model(arch), cfg, train_set=data.train, **run.trainer_options(data, {"toy": True}))
    run.start(trainer)
    trainer.fit()

    def summarize():
        arch.save(directory.path / "arch.json")
        return {"choices": list(arch.choices), "epochs": trainer.epoch, "best": trainer.best}

    return run.finish(summarize)
'''
TRAINING = ["--data", "digits", "--batch-size", "128", "--no-progress", "--no-flip", "--crop-padding", "0"]


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """What `pip install hwnas-toy-strategy` would write: the module and its dist-info naming it as a strategy."""
    root = tmp_path / "site"
    root.mkdir()
    (root / f"{PLUGIN}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    info = root / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hwnas.strategies]\ntoy = {PLUGIN}\n")
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    monkeypatch.syspath_prepend(str(root))
    yield root
    registry.STRATEGIES.pop("toy", None)
    sys.modules.pop(PLUGIN, None)


def hwnas_cli(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.slow
def test_an_installed_strategy_runs_and_resumes_from_the_command_line(plugin, tmp_path):
    listed = hwnas_cli("search", "--help", site=plugin, cwd=tmp_path)
    assert "toy options:" in listed.stdout and "--pick PICK" in listed.stdout
    assert "toy (trains the picked network; picks candidate --pick everywhere)" in " ".join(listed.stdout.split())
    run = tmp_path / "run"
    first = hwnas_cli(
        "search", "tiny.yaml", "--strategy", "toy", "--pick", "1", "--epochs", "1", "--run-dir", str(run), *TRAINING,
        site=plugin, cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads((run / "arch.json").read_text())["choices"] == ["ir_k5_e3"] * 3
    resumed = hwnas_cli("search", "--resume", str(run), "--epochs", "2", "--no-progress", site=plugin, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr and json.loads(resumed.stdout)["epochs"] == 2
    refused = hwnas_cli(
        "search", "tiny.yaml", "--strategy", "toy", "--population", "4", site=plugin, cwd=tmp_path
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--population is an option of evolution, pareto; the strategy toy does not take it" in refused.stderr


def test_a_strategy_registered_in_python_runs_from_python_and_owns_its_options(plugin, tmp_path, monkeypatch, capsys):
    __import__(PLUGIN)  # the decorator registers it, as importing any user's module would
    monkeypatch.chdir(tmp_path)
    training = {"data": "digits", "batch_size": 128, "progress": False, "flip": False, "crop_padding": 0}
    outcome = hwnas.search("tiny.yaml", strategy="toy", pick=2, epochs=1, run_dir="py", **training)
    assert outcome.summary["choices"] == ["skip"] * 3
    assert hwnas.search(resume="py", epochs=2).summary["epochs"] == 2
    with pytest.raises(hwnas.HwnasError, match=r"^pick is an option of toy; the strategy dnas does not take it"):
        hwnas.search("tiny.yaml", pick=1)
    assert main(["search", "tiny.yaml", "--pick", "1", "--no-progress"]) == 2
    assert "--pick is an option of toy; the strategy dnas does not take it" in capsys.readouterr().err
    with pytest.raises(hwnas.HwnasError, match=r"strategy 'toy' is registered already"):
        hwnas.register_strategy("toy", options=registry.strategy("toy").options, trains="-", picks="-")(print)
    with pytest.raises(hwnas.HwnasError, match=r"unknown strategy 'annealing'; expected one of dnas, random"):
        hwnas.search("tiny.yaml", strategy="annealing")


def test_a_strategy_whose_options_do_not_name_it_is_refused():
    with pytest.raises(hwnas.HwnasError, match=r"strategy 'mine': options 'DnasConfig' is not an options dataclass"):
        hwnas.register_strategy("mine", options=hwnas.DnasConfig, trains="-", picks="-")


def test_a_config_file_with_another_strategys_option_is_refused(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    (tmp_path / "c.yaml").write_text("population: 4\n")
    run = tmp_path / "r"
    assert (
        main(["search", str(tmp_path / "tiny.yaml"), "--config", str(tmp_path / "c.yaml"), "--run-dir", str(run)]) == 2
    )
    assert (
        "--population is an option of evolution, pareto; the strategy dnas does not take it" in capsys.readouterr().err
    )
    assert not run.exists()
