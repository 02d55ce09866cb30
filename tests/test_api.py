"""`import hwnas` as a library: the exported names, the keyword entry points, your own data and latency
models through the one run pipeline, and the strategy registry."""

import json
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import FAST, TINY_SPACE
from torch.utils.data import TensorDataset

import hwnas
import hwnas.strategies.run
from hwnas.arch import Architecture
from hwnas.cost.models import ArchitectureLatencyModel
from hwnas.strategies.registry import STRATEGIES, load_strategies, register_strategy


def test_import_hwnas_exports_a_documented_set_without_loading_torch():
    code = "import sys, hwnas; print(len(hwnas.__all__), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(hwnas.__all__)), "False"]
    for name in ("search", "train_supernet", "train", "build_model", "Supernet", "extract_model", "load_space"):
        assert name in hwnas.__all__
    for name in hwnas.__all__:
        value = getattr(hwnas, name)
        assert value.__doc__, f"hwnas.{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hwnas.nothing_here  # noqa: B018


def test_strategies_are_registered_with_their_options_kind_and_space():
    load_strategies()
    assert {name: (s.kind, s.space, s.options.__name__) for name, s in STRATEGIES.items()} == {
        "dnas": ("search", "layerwise", "DnasConfig"),
        "random": ("search", "layerwise", "RandomSearchConfig"),
        "evolution": ("search", "layerwise", "EvolutionConfig"),
        "pareto": ("search", "layerwise", "ParetoConfig"),
        "darts": ("search", "cell", "DartsConfig"),
        "uniform": ("supernet", "layerwise", "SupernetConfig"),
        "fair": ("supernet", "layerwise", "SupernetConfig"),
        "sandwich": ("supernet", "layerwise", "SupernetConfig"),
    }
    assert all(s.trains and s.picks for s in STRATEGIES.values())  # what --help says of each
    with pytest.raises(hwnas.HwnasError, match="registered already"):
        register_strategy("dnas", options=hwnas.DnasConfig, trains="-", picks="-")(lambda run: None)


def test_options_are_keywords_and_bad_ones_are_one_line(tmp_path):
    with pytest.raises(hwnas.HwnasError) as err:
        hwnas.search("fbnet_small", epoch=3)
    assert "unknown option 'epoch'" in str(err.value) and "epochs" in str(err.value)
    with pytest.raises(hwnas.HwnasError, match=r"epochs: got 0, expected"):
        hwnas.train("fbnet_a", epochs=0)
    with pytest.raises(hwnas.HwnasError, match="val_data goes with a Dataset"):
        hwnas.train("fbnet_a", data="digits", val_data=[])
    assert not (tmp_path / "runs").exists()


def tiny(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    return str(tmp_path / "tiny.yaml")


@pytest.mark.slow
def test_train_and_evaluate_on_your_own_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (540,), generator=g)
    images = torch.rand(540, 1, 8, 8, generator=g) * 0.2 + labels.view(-1, 1, 1, 1) * 0.35  # brightness = class
    data, val = TensorDataset(images[:480], labels[:480]), TensorDataset(images[480:], labels[480:])
    three_classes = hwnas.load_space(tiny(tmp_path), num_classes=3)  # the classes the labels 0..2 imply
    arch = Architecture.from_space(three_classes, ["ir_k3_e3", "skip", "skip"])
    outcome = hwnas.train(arch, data=data, val_data=val, epochs=6, batch_size=32, lr=0.1, run_dir="run", **FAST)
    assert outcome.final["val_images"] == 60 and outcome.final["val_top1"] > 80
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["data"] == "python:TensorDataset"
    before = sorted(p.name for p in tmp_path.iterdir())
    metrics = hwnas.evaluate(arch, str(outcome.run_dir / "model.pt"), data=data, val_data=val, **FAST)
    assert metrics["val_top1"] == pytest.approx(outcome.final["val_top1"]) and metrics["images"] == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # evaluate writes nothing unless asked


@pytest.mark.slow
def test_a_latency_model_prices_a_search_and_an_architecture_model_limits_one_shot(tmp_path, tiny_supernet):
    space = tiny(tmp_path)
    found = hwnas.search(
        space,
        latency_model=lambda entry: 0.001 * (entry.macs / 1e4) + 0.01,
        epochs=1,
        weight_warmup_epochs=0,
        run_dir=str(tmp_path / "dnas"),
        **FAST,
    )
    fitted = hwnas.Architecture.load(found.arch_path).spec
    table = hwnas.table_from_model(fitted, lambda entry: 0.001 * (entry.macs / 1e4) + 0.01)
    assert found.summary["predicted_latency_ms"] == pytest.approx(table.predict(fitted, found.summary["choices"]))

    with pytest.raises(hwnas.HwnasError, match="needs a layer latency model"):
        model = ArchitectureLatencyModel(lambda arch: 1.0)
        hwnas.search(space, latency_model=model, epochs=1, weight_warmup_epochs=0, **FAST)

    skips = ArchitectureLatencyModel(lambda arch: 1.0 + arch.choices.count("ir_k3_e3") + arch.choices.count("ir_k5_e3"))
    picked = hwnas.search(
        space,
        strategy="random",
        supernet=str(tiny_supernet),
        random_iteration=6,
        max_latency=2.0,
        latency_model=skips,
        recalibrate_batches=1,
        run_dir=str(tmp_path / "random"),
        **FAST,
    )
    assert sum(op != "skip" for op in picked.summary["choices"]) <= 1
    with pytest.raises(hwnas.HwnasError, match=r"max-latency 0\.5: no architecture"):
        hwnas.search(
            space, strategy="random", supernet=str(tiny_supernet), max_latency=0.5, latency_model=skips, **FAST
        )


@pytest.mark.slow
def test_resume_from_python_takes_only_the_options_a_resumed_run_may_change(tmp_path):
    space = tiny(tmp_path)
    first = hwnas.search(space, cost="macs", epochs=1, weight_warmup_epochs=0, run_dir=str(tmp_path / "s"), **FAST)
    again = hwnas.search(resume=str(first.run_dir), epochs=2, progress=False)
    assert again.run_dir == first.run_dir and json.loads((first.run_dir / "result.json").read_text())
    with pytest.raises(hwnas.HwnasError, match="lr was"):
        hwnas.search(resume=str(first.run_dir), lr=0.5)


def test_threads_are_set_for_the_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        arch = Architecture.from_space(hwnas.load_space(tiny(tmp_path)), ["skip", "skip", "skip"])
        hwnas.train(arch, epochs=1, threads=1, run_dir="run", **FAST)
        assert torch.get_num_threads() == 1
        assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["threads"] == 1
    finally:
        torch.set_num_threads(before)


def brightness_pools(images: int, seed: int) -> hwnas.DataPools:
    """4 classes told apart by brightness; the test pool's labels are shifted by one class, so a network that learnt
    the classes scores about 0% on it, and about 100% on images like the training ones."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (images,), generator=g)
    pixels = torch.rand(images, 1, 8, 8, generator=g) * 0.1 + labels.view(-1, 1, 1, 1) * 0.3
    test = TensorDataset(pixels[:64], (labels[:64] + 1) % 4)
    return hwnas.pools_from_datasets(TensorDataset(pixels, labels), test, classes=4)


@pytest.mark.slow
def test_a_dnas_search_never_validates_on_the_test_pool(tmp_path):
    """DNAS validates each epoch on its θ split of the training images: with a test pool whose labels are all wrong,
    its validation accuracy still climbs (it would fall towards 0% on that pool)."""
    outcome = hwnas.search(
        tiny(tmp_path),
        data=brightness_pools(1024, 0),
        cost="macs",
        epochs=3,
        weight_warmup_epochs=1,
        lr=0.2,
        run_dir=str(tmp_path / "dnas"),
        **FAST,
    )
    epochs = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["val_top1"] for e in epochs if e.get("kind") == "epoch"][-1] > 60
