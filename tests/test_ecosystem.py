"""hwnas as a citizen of its ecosystem: options that `help()` and signatures show (and typed option objects), the
version, py.typed, no abbreviated flags, `Outcome.model()`, and timm's signatures on the built networks."""

import importlib.metadata
import inspect
import json
import pydoc
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import yaml
from helpers import FAST, tiny_arch

import hwnas
import hwnas.api
from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.signature import ScopedDefault

ROOT = Path(__file__).resolve().parents[1]
OWN = {"data", "space", "sampling", "strategy", "latency_model"}  # options the entry points take as parameters
SEARCH_OPTIONS = [
    hwnas.DnasConfig,
    hwnas.RandomSearchConfig,
    hwnas.EvolutionConfig,
    hwnas.ParetoConfig,
    hwnas.DartsConfig,
]
SCOPES = {cls: cls().strategy for cls in SEARCH_OPTIONS}  # search's options classes, by the strategy that reads them
ENTRY_POINTS = {
    "train": [hwnas.TrainConfig],
    "evaluate": [hwnas.TrainConfig],
    "train_supernet": [hwnas.SupernetConfig],
    "search": SEARCH_OPTIONS,
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_every_option_is_a_keyword_with_its_type_default_and_help(name):
    func = getattr(hwnas, name)
    parameters = inspect.signature(func).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    doc = inspect.getdoc(func)
    classes = ENTRY_POINTS[name]
    for cls in classes:
        for f in fields(cls):
            if f.name in OWN:
                continue
            parameter = parameters[f.name]
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
            default = parameter.default
            if isinstance(default, ScopedDefault):  # search: not one default for every strategy
                assert len(classes) > 1 and dict(default.values)[SCOPES[cls]] == f.default
            else:
                assert default == f.default
            assert parameter.annotation is not inspect.Parameter.empty
            assert f"\n    {f.name}: " in doc, f.name
            assert " ".join(f.metadata["help"].split()[:4]) in " ".join(doc.split()), f.name  # the --help text


def test_help_shows_the_options_with_types_defaults_and_the_scopes_that_read_them():
    train = pydoc.render_doc(hwnas.train, renderer=pydoc.plaintext)
    assert "epochs: int = 10" in train and "number of epochs" in train
    assert "optimizer: 'sgd' | 'adam' | 'rmsprop' = 'sgd'" in train
    search = inspect.signature(hwnas.search).parameters
    assert repr(search["epochs"].default) == "10 (dnas, random, evolution, pareto) | 50 (darts)"
    assert repr(search["mode"].default) == "'gumbel' (dnas) | 'softmax' (darts)"  # one concept: how candidates mix
    assert repr(search["sec_approx"].default) == "False (darts)"
    assert repr(search["target"].default) == "None (dnas, darts)"  # the same in both that read it
    assert search["data"].default is None  # the same in every strategy
    assert "eval_layers: int = 20 (darts)" in inspect.getdoc(hwnas.search)


def test_unknown_keywords_stay_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call, said in (
        (lambda: hwnas.train("mobilenet_v2", epoch=3), "unknown option"),
        (lambda: hwnas.search("fbnet_small", sec_approx=True), "sec_approx is an option of darts"),  # a cell option
        (lambda: hwnas.search("fbnet_small", population=8), "population is an option of evolution, pareto"),
        (lambda: hwnas.train_supernet("fbnet_small", strategy="evolution"), "unknown option"),
    ):
        with pytest.raises(hwnas.HwnasError) as err:
            call()
        assert said in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("space", ["fbnet_small", "darts"])
def test_passing_the_signatures_defaults_back_is_passing_nothing(space, monkeypatch):
    configs = []
    monkeypatch.setattr(hwnas.api, "run_search", lambda cfg, **kw: configs.append((cfg, kw["explicit"])))
    hwnas.search(space)
    bound = inspect.signature(hwnas.search).bind(space)
    bound.apply_defaults()
    hwnas.search(*bound.args, **bound.kwargs)
    (plain, _), (defaults, explicit) = configs
    assert plain == defaults
    assert not {"epochs", "mode", "sec_approx"} & explicit


def test_options_as_a_typed_object(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(hwnas.HwnasError, match=r"^train: config: got DnasConfig, expected a TrainConfig"):
        hwnas.train("mobilenet_v2", config=hwnas.DnasConfig())
    with pytest.raises(hwnas.HwnasError, match=r"^--strategy dnas searches layerwise spaces; darts is a cell space"):
        hwnas.search("darts", config=hwnas.DnasConfig(epochs=1))
    with pytest.raises(hwnas.HwnasError, match=r"epochs: got 0, expected"):
        hwnas.train("mobilenet_v2", config=hwnas.TrainConfig(epochs=0))
    config = hwnas.TrainConfig(epochs=1, batch_size=128, lr=0.2, run_dir="run", **FAST)
    outcome = hwnas.train(tiny_arch(tmp_path), config=config, lr=0.1)  # keywords win over the object
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["epochs"], saved["batch_size"], saved["lr"], saved["data"]) == (1, 128, 0.1, "digits")

    network = outcome.model().eval()  # the shipped weights, loaded
    fresh = hwnas.build_model(outcome.arch_path).eval()
    hwnas.load_weights(fresh, outcome.run_dir / "model.pt")
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(network(images), fresh(images))
        assert not torch.equal(outcome.model(pretrained=False).eval()(images), network(images))
    recorded = json.loads(outcome.arch_path.read_text()).get("pretrained_cfg")
    assert getattr(network, "pretrained_cfg", None) == recorded


def test_outcome_model_of_a_search_and_of_a_supernet(tmp_path):
    arch = Architecture.from_zoo("mobilenet_v2").with_space_args(input_size=[3, 32, 32], num_classes=5)
    arch.save(tmp_path / "arch.json")
    searched = hwnas.Outcome(tmp_path, tmp_path / "arch.json")  # what a search returns: no model.pt
    with pytest.raises(hwnas.HwnasError, match=r"ships no weights .*expected model\(pretrained=False\)"):
        searched.model()
    assert searched.model(pretrained=False)(torch.rand(2, 3, 32, 32)).shape == (2, 5)
    with pytest.raises(hwnas.HwnasError, match="ships a supernet"):
        hwnas.Outcome(tmp_path, None).model()


@pytest.mark.slow
def test_version_is_written_once_and_the_command_prints_it():
    assert hwnas.__version__ == importlib.metadata.version("hwnas"), "reinstall: pip install -e ."
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hwnas.__version__"}
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["hwnas"]
    assert (ROOT / "hwnas" / "py.typed").is_file()
    out = subprocess.run([sys.executable, "-m", "hwnas", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout == f"hwnas {hwnas.__version__}\n"


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["search", "fbnet_small", "--epoch", "3"], "--epoch"),
        (["search", "darts", "--sec"], "--sec"),
        (["train", "mobilenet_v2", "--lr-m", "0.1"], "--lr-m"),
        (["supernet", "train", "fbnet_small", "--samp", "fair"], "--samp"),
        (["profile", "mobilenet_v2", "--jso"], "--jso"),
        (["eval", "mobilenet_v2", "--weights", "w.pt", "--val-s", "0.2"], "--val-s"),
        (["search", "--res", "runs/x"], "--res"),
        (["--deb", "zoo"], "--deb"),
    ],
)
def test_abbreviated_flags_are_refused(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag}" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def timm_nets(tmp_path):
    layerwise = hwnas.build_model(tiny_arch(tmp_path))
    cells = hwnas.build_model(
        Architecture.from_zoo("darts_v2").with_space_args(
            input_size=[3, 32, 32], num_classes=6, init_channels=4, layers=5, auxiliary=True
        )
    )
    return [(layerwise.eval(), torch.rand(2, 1, 8, 8)), (cells.eval(), torch.rand(2, 3, 32, 32))]


def test_timm_signatures_on_built_networks(tmp_path):
    for net, _ in timm_nets(tmp_path):
        assert {n: p.default for n, p in inspect.signature(net.forward_intermediates).parameters.items()} == {
            "x": inspect.Parameter.empty,
            "indices": None,
            "norm": False,
            "stop_early": False,
            "output_fmt": "NCHW",
            "intermediates_only": False,
        }
        assert {n: p.default for n, p in inspect.signature(net.reset_classifier).parameters.items()} == {
            "num_classes": inspect.Parameter.empty,
            "global_pool": None,
        }
        assert {n: p.default for n, p in inspect.signature(net.prune_intermediate_layers).parameters.items()} == {
            "indices": 1,
            "prune_norm": False,
            "prune_head": True,
        }


@torch.no_grad()
def test_forward_intermediates_stops_early_and_gives_nhwc(tmp_path):
    for net, x in timm_nets(tmp_path):
        final, maps = net.forward_intermediates(x)
        assert torch.equal(final, net.forward_features(x))
        assert torch.equal(net.forward_intermediates(x, norm=True)[0], final)  # no final norm in these networks
        last_name = net.feature_info[-1]["module"]
        ran: list[bool] = []
        net.get_submodule(last_name).register_forward_hook(lambda *_, ran=ran: ran.append(True))
        stopped, early = net.forward_intermediates(x, indices=[0], stop_early=True)
        assert not ran and torch.equal(stopped, early[0]) and torch.equal(early[0], maps[0])
        nhwc = net.forward_intermediates(x, indices=2, output_fmt="NHWC", intermediates_only=True)
        assert [m.shape for m in nhwc] == [m.permute(0, 2, 3, 1).shape for m in maps[-2:]]
        assert all(torch.equal(a, b.permute(0, 2, 3, 1)) for a, b in zip(nhwc, maps[-2:], strict=True))
        with pytest.raises(hwnas.HwnasError, match=r"output_fmt: got 'NLC', expected one of NCHW, NHWC"):
            net.forward_intermediates(x, output_fmt="NLC")


@torch.no_grad()
def test_reset_classifier_takes_timms_global_pool(tmp_path):
    for net, x in timm_nets(tmp_path):
        features = net.forward_features(x)
        net.reset_classifier(7, global_pool="avg")
        assert net(x).shape == (2, 7)
        net.reset_classifier(0, "")  # no pooling: forward returns the feature map
        assert torch.equal(net(x), features)
        with pytest.raises(hwnas.HwnasError, match=r"global_pool '': got num_classes=3, expected 0"):
            net.reset_classifier(3)  # None keeps the current pooling, "" here
        with pytest.raises(hwnas.HwnasError, match=r"global_pool: got 'max', expected 'avg', ''"):
            net.reset_classifier(3, "max")
        net.reset_classifier(3, "avg")
        assert net(x).shape == (2, 3) and net.num_classes == 3


@torch.no_grad()
def test_prune_intermediate_layers_keeps_the_backbone_up_to_a_stage(tmp_path):
    for net, x in timm_nets(tmp_path):
        _, maps = net.forward_intermediates(x)
        with pytest.raises(hwnas.HwnasError, match="prune_head=False: the head reads the last stage's output"):
            net.prune_intermediate_layers([0], prune_head=False)
        assert net.prune_intermediate_layers([0]) == [0]
        assert len(net.feature_info) == 1 and net.num_classes == 0
        assert torch.equal(net(x), maps[0].mean((2, 3))) and net.num_features == maps[0].shape[1]
        again, kept = net.forward_intermediates(x)
        assert torch.equal(again, maps[0]) and torch.equal(kept[0], maps[0])
