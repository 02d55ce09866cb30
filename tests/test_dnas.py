import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost import profile_arch
from hwnas.cost.build import build_table, load_or_build
from hwnas.cost.cost_model import UNITS, CostModel
from hwnas.cost.hardware_loss import HardwareLoss
from hwnas.cost.interleaved import QUICK_ROUNDS
from hwnas.cost.table import CostTable
from hwnas.errors import HwnasError, SpaceError
from hwnas.spaces import load_space
from hwnas.supernet import Supernet
from hwnas.supernet.mixing import ArchParams, Mixing, temperature_at
from tests.helpers import (
    TINY_SPACE,
    built_once,
    kill_after_checkpoint,
    last_theta,
    rank_results,
    run_here,
    two_rank_results,
)

ROOT = Path(__file__).parents[1]


@pytest.fixture
def table(tiny_latency_cached) -> CostTable:
    """The measured latency table of the tiny space (measured once a session)."""
    return CostTable.load(tiny_latency_cached)


@pytest.mark.parametrize("mode", list(Mixing))
def test_gradients_reach_theta(space_file, mode):
    supernet = Supernet(load_space(str(space_file)))
    theta = ArchParams(supernet)
    with torch.no_grad():
        for t in theta.logits:
            t.normal_()
        for m in supernet.modules():  # as after some training: residual candidates no longer the identity
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
    out = supernet(torch.randn(4, 1, 8, 8), theta.choices(mode, temperature=1.0, seed=3))
    out.pow(2).mean().backward()
    for t in theta.logits:
        assert t.grad is not None and torch.isfinite(t.grad).all() and (t.grad != 0).all()


def test_hard_gumbel_runs_one_candidate_per_layer(space_file):
    supernet = Supernet(load_space(str(space_file)))
    calls = []
    for i, layer in enumerate(supernet.layers):
        for j, op in enumerate(layer.candidates):
            op.register_forward_hook(lambda m, a, o, i=i, j=j: calls.append((i, j)))
    choices = ArchParams(supernet).choices(Mixing.GUMBEL_HARD, temperature=5.0, seed=1)
    supernet(torch.randn(2, 1, 8, 8), choices)
    assert [i for i, _ in calls] == [0, 1, 2]
    assert [j for _, j in calls] == [c[0] for c in choices]
    calls.clear()
    supernet(torch.randn(2, 1, 8, 8), ArchParams(supernet).choices(Mixing.GUMBEL, temperature=5.0, seed=1))
    assert len(calls) == 9  # soft: every candidate of every layer


def test_noise_is_a_function_of_the_seed(space_file):
    theta = ArchParams(Supernet(load_space(str(space_file))))
    a, b, c = (theta.choices(Mixing.GUMBEL, 1.0, s) for s in (7, 7, 8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    assert temperature_at(0) == 5.0 and temperature_at(2) == pytest.approx(5.0 * 0.956**2)


def test_expected_cost_is_differentiable_and_a_sum_for_one_hot_theta(space_file, table):
    space = load_space(str(space_file))
    rng = random.Random(0)
    for _ in range(5):
        choices = [rng.choice(layer.candidates) for layer in space.layers]
        probs = [
            torch.nn.functional.one_hot(torch.tensor(la.candidates.index(op)), len(la.candidates)).float()
            for la, op in zip(space.layers, choices, strict=True)
        ]
        arch = Architecture.from_space(space, choices)
        profile = profile_arch(arch)
        costs = {m: CostModel.from_table(table, space, m) for m in UNITS}
        assert float(costs["latency"].expected(probs)) == pytest.approx(table.predict(space, choices))
        assert float(costs["macs"].expected(probs)) * 1e6 == pytest.approx(profile.macs)
        assert float(costs["params"].expected(probs)) * 1e6 == pytest.approx(profile.params)
    logits = [torch.zeros(len(la.candidates), requires_grad=True) for la in space.layers]
    costs["latency"].expected([torch.softmax(t, -1) for t in logits]).backward()
    assert all(t.grad.abs().sum() > 0 for t in logits)


def test_table_file_is_self_describing(table, tmp_path):
    path = table.save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    assert data["format"] == "hwnas.costtable/1" and data["meta"]["threads"] == 1 and data["meta"]["device"] == "cpu"
    key = "ir_k3_e3-input:8x8x8-output:16-stride:2-act:relu-e1:keep"
    entry = data["entries"][key]
    assert set(entry["latency_ms"]) == {"min", "median", "mean", "std", "count"} and entry["macs"] > 0
    assert data["meta"]["latency_estimate"] == "min" and data["meta"]["calibration_fit"]["networks"] == 6
    assert CostTable.load(path).entries == table.entries


def test_cache_rebuilds_when_the_space_changes_and_not_otherwise(space_file, monkeypatch):
    import hwnas.cost.build as table_module

    built = []
    real = table_module.build_table

    def counting(space, **kw):
        built.append(space.name)
        return real(space, **{**kw, "policy": QUICK_ROUNDS})

    monkeypatch.setattr(table_module, "build_table", counting)
    first = load_or_build(load_space(str(space_file)), progress=False)
    again = load_or_build(load_space(str(space_file)), progress=False)
    assert len(built) == 1 and again.entries == first.entries
    space_file.write_text(TINY_SPACE.replace("channels: 32", "channels: 40"))
    load_or_build(load_space(str(space_file)), progress=False)
    assert len(built) == 2
    load_or_build(load_space(str(space_file), activation="relu6"), progress=False)
    assert len(built) == 3
    load_or_build(load_space(str(space_file)), progress=False)
    assert len(built) == 3


@pytest.mark.slow
def test_corrupt_cached_table_is_rebuilt_with_a_message(space_file, tiny_latency_cached, caplog):
    space = load_space(str(space_file))
    table = load_or_build(space, progress=False)
    assert table.path == tiny_latency_cached  # the session's measurement, not a new one
    table.path.write_text('{"format": "hwnas.costtable/1", "entries": {"x": {}}}')
    rebuilt = load_or_build(space, progress=False)
    assert "lacks latency_ms.median" in caplog.text and rebuilt.path == table.path
    assert CostTable.load(table.path).entries.keys() == rebuilt.entries.keys()


def test_a_table_for_another_space_is_refused(table, tmp_path, space_file):
    path = table.save(tmp_path / "t.json")
    other = load_space(str(space_file), width_mult=2.0)
    with pytest.raises(HwnasError, match=r"t.json: no entry for 'stem-conv_k3/16"):
        load_or_build(other, table=str(path))


def test_hardware_losses(table, space_file):
    space = load_space(str(space_file))
    cost = CostModel.from_table(table, space, "latency")
    ce, c = torch.tensor(2.0), torch.tensor(3.0)
    mul = HardwareLoss("mul", alpha=0.2, beta=0.6, reference=1.5)
    assert float(mul(ce, c)) == pytest.approx(2.0 * 0.2 * math.log(math.e * 3.0 / 1.5) ** 0.6)
    assert float(HardwareLoss("add", weight=0.5)(ce, c)) == pytest.approx(3.5)
    assert float(HardwareLoss("add", weight=0.5, target=4.0)(ce, c)) == pytest.approx(2.0)
    assert float(HardwareLoss("add", weight=0.5, target=2.0, target_mode="abs")(ce, c)) == pytest.approx(2.5)
    ops = [la.candidates for la in space.layers]
    cheapest, _ = cost.cheapest()
    with pytest.raises(
        HwnasError, match=r"no architecture in this space meets it; the cheapest costs .* \(skip, skip, skip\)"
    ):
        HardwareLoss("add", target=cheapest / 2).check(cost, ops)
    with pytest.raises(HwnasError, match="--alpha -1"):
        HardwareLoss("mul", alpha=-1).check(cost, ops)
    with pytest.raises(HwnasError, match=r"--hc-weight -0\.1"):
        HardwareLoss("add", weight=-0.1).check(cost, ops)
    HardwareLoss("mul").check(cost, ops)  # the tiny space runs well under 1 ms, which mul accepts now


def test_latency_device_must_exist():
    from hwnas.cost.latency import check_device

    if not torch.cuda.is_available():
        with pytest.raises(HwnasError, match="latency device cuda: no CUDA GPU on this machine"):
            check_device("cuda")
    with pytest.raises(HwnasError, match="expected one of cpu, cuda"):
        check_device("tpu")


def test_empty_candidate_list(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("candidates: []\nstages: [{channels: 8, layers: 1}]\n")
    with pytest.raises(SpaceError, match=r"candidates: got \[\], expected a non-empty list of op names"):
        load_space(str(path))


def test_latency_cli(space_file, tiny_latency_cached, capsys):
    assert main(["latency", str(space_file), "--json"]) == 0
    grid = json.loads(capsys.readouterr().out)
    assert len(grid["layers"]) == 3 and set(grid["layers"][0]) == {"ir_k3_e3", "ir_k5_e3", "skip"}
    assert main(["latency", "validate", str(space_file), "--samples", "4", "--seconds", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4 and len(report["measured_ms"]) == 4 and report["mean_error_pct"] >= 0
    assert report["calibration_networks"] == 6 and -1 <= report["repeatability_spearman"] <= 1
    for field in ("spearman", "kendall", "max_error_pct", "mean_error_pct_without_offset", "repeatability_pct"):
        assert math.isfinite(report[field]), field
    assert main(["latency", "validate", str(space_file), "--seconds", "-1"]) == 2
    assert "--seconds: got '-1', expected a number in [0, 3600]" in capsys.readouterr().err
    assert main(["latency", "show", str(space_file)]) == 2
    assert "expected SPACE or validate SPACE" in capsys.readouterr().err


def test_validate_reports_the_machines_drift_since_the_table_was_built(space_file, tiny_latency_cached, capsys):
    table = json.loads(tiny_latency_cached.read_text())
    fit = table["meta"]["calibration_fit"]
    assert len(fit["measured_ms"]) == 6
    fit["measured_ms"] = [t / 2 for t in fit["measured_ms"]]  # as if the machine had run twice as fast then
    tiny_latency_cached.write_text(json.dumps(table))
    assert main(["latency", "validate", str(space_file), "--samples", "4", "--seconds", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["speed_ratio"] > 1.5 and report["drift_pct"] > 50 and report["drifted"] is True
    scaled = [p * report["speed_ratio"] for p in report["predicted_ms"]]
    errors = [abs(p - m) / m * 100 for p, m in zip(scaled, report["measured_ms"], strict=True)]
    assert report["mean_error_pct_at_speed"] == pytest.approx(sum(errors) / len(errors))
    assert main(["latency", "validate", str(space_file), "--samples", "4", "--seconds", "0"]) == 0
    out = capsys.readouterr().out
    assert "calibration networks, timed again with these, ran" in out
    assert "the machine's speed moved +" in out and "judge the table by its errors at today's speed" in out


SEARCH = [
    "--input",
    "1x8x8",
    "--epochs",
    "3",
    "--weight-warmup-epochs",
    "1",
    "--hw-loss",
    "add",
    "--hc-weight",
    "0.1",
    "--arch-lr",
    "0.1",
    "--train-portion",
    "0.5",
    "--no-progress",
    "--no-flip",
    "--crop-padding",
    "0",
]


@pytest.mark.slow
def test_search_writes_an_architecture_that_trains(space_file, tiny_latency_cached, tmp_path, capsys):
    run = tmp_path / "search"
    args = ["search", str(space_file), *SEARCH, "--run-dir", str(run), "--sample", "2", "--mode", "gumbel_hard"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    arch = Architecture.load(run / "arch.json")
    assert list(arch.choices) == result["choices"] and arch.meta["strategy"] == "dnas"
    assert set(arch.meta["expected"]) == {"latency_ms", "macs_m", "params_m"} and arch.meta["measured_latency_ms"] > 0
    assert (run / "theta.png").read_bytes()[:4] == b"\x89PNG"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    assert len(epochs) == 3 and "arch_loss" in epochs[1] and "arch_loss" not in epochs[0]
    assert len(epochs[-1]["theta"]) == 3 and len(epochs[-1]["argmax"]) == 3 and epochs[-1]["theta_entropy"] > 0
    assert "expected_latency" in epochs[-1]
    assert (
        main(["train", str(run / "arch.json"), "--epochs", "1", "--no-progress", "--run-dir", str(tmp_path / "t")]) == 0
    )
    assert json.loads(capsys.readouterr().out)["best"]["val_top1"] >= 0


def test_search_refuses_an_unreachable_target(space_file, tiny_latency_cached, tmp_path):
    with pytest.raises(HwnasError, match="no architecture in this space meets it"):
        from hwnas.cli import build_parser

        args = build_parser().parse_args(
            ["search", str(space_file), *SEARCH, "--target", "0.0001", "--run-dir", str(tmp_path / "r")]
        )
        args.func(args)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_search_resumes_after_sigkill_with_the_same_theta(space_file, tiny_latency_cached, tmp_path, monkeypatch):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(tmp_path / "cache")}
    args = [
        str(space_file),
        *SEARCH,
        "--epochs",
        "4",
        "--checkpoint-every",
        "3",
        "--batch-size",
        "32",
        "--mode",
        "gumbel_hard",
        "--threads",
        "1",
    ]
    cmd = [sys.executable, "-m", "hwnas", "search"]
    run_here(["search", *args, "--run-dir", str(tmp_path / "ref")], tmp_path / "cache", monkeypatch)
    run = tmp_path / "run"
    kill_after_checkpoint([*cmd, *args, "--run-dir", str(run)], run, "epoch_002", env)
    done = subprocess.run([*cmd, "--resume", str(run)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert last_theta(run) == last_theta(tmp_path / "ref")
    assert (
        json.loads((run / "result.json").read_text())["choices"]
        == json.loads((tmp_path / "ref" / "result.json").read_text())["choices"]
    )


@pytest.fixture(scope="session")
def dnas_under_torchrun(tmp_path_factory) -> Path:
    """One torchrun launch (2 ranks) of a short DNAS search per mode; each rank's θ and paths in rank<N>_<mode>.pt."""

    def build(root: Path) -> None:
        (root / "tiny.yaml").write_text(TINY_SPACE)
        two_rank_results(
            "ddp_search_worker.py", str(root / "tiny.yaml"), "gumbel,gumbel_hard", out=root, suffix="_gumbel"
        )

    return built_once(tmp_path_factory, "dnas_under_torchrun", build)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gumbel", "gumbel_hard"])
def test_every_rank_ends_with_the_same_architecture(dnas_under_torchrun, mode):
    ranks = rank_results(dnas_under_torchrun, f"_{mode}")
    assert ranks[0]["argmax"] == ranks[1]["argmax"]
    assert all(torch.equal(a, b) for a, b in zip(ranks[0]["theta"], ranks[1]["theta"], strict=True))
    assert ranks[0]["paths"] == ranks[1]["paths"] and len(ranks[0]["paths"]) > 10
    assert any(t.abs().sum() > 0 for t in ranks[0]["theta"])  # θ did train


def test_onnxruntime_table(space_file):
    table = build_table(load_space(str(space_file)), device="onnxruntime", policy=QUICK_ROUNDS, progress=False)
    assert table.meta["device"] == "onnxruntime" and "onnxruntime" in table.meta["device_name"]
    assert all(e["latency_ms"]["median"] > 0 and e["latency_ms"]["count"] > 0 for e in table.entries.values())


def test_hard_mode_theta_gradient_is_the_score_function(space_file):
    """gumbel_hard: θ's CE gradient is (CE - b)·∇ log p(sampled path), b a moving average of the CE."""
    from hwnas.data import Preprocess, open_dataset
    from hwnas.strategies.architect import BASELINE_DECAY
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.dnas import DNASTrainer

    space = load_space(str(space_file))
    pools = open_dataset("digits", space.input_size)
    costs = {m: CostModel.from_table(build_table(space, measure=False, progress=False), space, m) for m in ("macs",)}
    cfg = DnasConfig(space=str(space_file), mode="gumbel_hard", cost="macs", progress=False, checkpoint_every=0)
    trainer = DNASTrainer(
        Supernet(space),
        cfg,
        weight_set=pools.train,
        theta_set=pools.train,
        val_set=pools.test,
        preprocess=Preprocess(space.input_size, pools.mean, pools.std),
        device=torch.device("cpu"),
        costs=costs,
        hardware_loss=HardwareLoss("add", weight=0.0),
    )
    with torch.no_grad():
        for t in trainer.theta.logits:
            t.normal_()
    images, labels = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    path = [k for k, _ in trainer.path(grad=False)]
    trainer.architect.ce_baseline = 1.0
    _, ce = trainer.sampled_path_ce(images, labels)
    ce.backward()
    for t, k in zip(trainer.theta.logits, path, strict=True):
        expected = (float(ce.detach()) - 1.0) * (torch.nn.functional.one_hot(torch.tensor(k), len(t)) - t.softmax(-1))
        assert torch.allclose(t.grad, expected.detach(), atol=1e-6)
    assert trainer.architect.ce_baseline == pytest.approx(BASELINE_DECAY + (1 - BASELINE_DECAY) * float(ce.detach()))
    assert trainer.extra_state()["theta"]["ce_baseline"] == trainer.architect.ce_baseline  # resumes with it


@pytest.mark.parametrize(("mode", "asked", "expected"), [("gumbel", None, True), ("gumbel_hard", None, True),
                                                         ("gumbel", False, False)])  # fmt: skip
def test_steps_default_to_channels_last_on_the_cpu_and_the_switch_turns_it_off(space_file, mode, asked, expected):
    from hwnas.data import Preprocess, open_dataset
    from hwnas.engine.trainer import Trainer
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.dnas import DNASTrainer

    space = load_space(str(space_file))
    pools = open_dataset("digits", space.input_size)
    pre = Preprocess(space.input_size, pools.mean, pools.std)
    costs = {"macs": CostModel.from_table(build_table(space, measure=False, progress=False), space, "macs")}
    cfg = DnasConfig(space=str(space_file), mode=mode, cost="macs", channels_last=asked, progress=False)
    common = {"val_set": pools.test, "preprocess": pre, "device": torch.device("cpu")}
    trainer = DNASTrainer(
        Supernet(space), cfg, weight_set=pools.train, theta_set=pools.train, costs=costs,
        hardware_loss=HardwareLoss("add", weight=0.0), **common,
    )  # fmt: skip
    assert trainer.channels_last is expected
    plain = Trainer(torch.nn.Conv2d(1, 4, 3), cfg, train_set=pools.train, **common)
    assert plain.channels_last is expected  # stand-alone steps too
