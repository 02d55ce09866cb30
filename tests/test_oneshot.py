import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwnas.cli import main
from hwnas.errors import HwnasError
from hwnas.pipeline import cost_table
from hwnas.spaces import load_space
from hwnas.strategies.config import DnasConfig, EvolutionConfig, RandomSearchConfig, SupernetConfig
from hwnas.strategies.constraints import constraints_for
from hwnas.strategies.evolution import non_dominated_sort
from hwnas.strategies.paths import fair_paths, uniform_path, within_limits
from hwnas.strategies.registry import strategy
from hwnas.strategies.run import search, train_supernet
from tests.helpers import FAST, TINY_SPACE, built_once, rank_results, run_here, two_rank_results

ROOT = Path(__file__).parents[1]


def test_fair_paths_use_every_candidate_once():
    rng = random.Random(0)
    counts = [4, 4, 3, 1]
    for _ in range(20):
        paths = fair_paths(counts, rng)
        assert len(paths) == 4
        for layer, n in enumerate(counts):
            used = sorted(p[layer] for p in paths)
            assert set(used) == set(range(n)) and (n < 4 or used == [0, 1, 2, 3])


def test_strict_fairness_holds_in_training(space_file, tmp_path):
    out = train_supernet(
        SupernetConfig(
            space=str(space_file), sampling="fair", epochs=1, batch_size=128, run_dir=str(tmp_path / "sup"), **FAST
        )
    )
    trained = out.summary["trained_per_candidate"]
    steps = 1293 // 128  # supernets train on 90% of the 1,437 training digits (10% validates)
    assert trained == [[steps] * 3] * 3  # every candidate of every layer, once per step


@pytest.mark.slow
def test_a_supernet_trains_enough_steps_and_no_padded_crops_by_default(space_file, tmp_path, capsys):
    """On the bundled digits an epoch is 20 steps: 10 epochs left every path near chance, so the default is as
    many epochs as make 1,000 steps, and no padded crops (they kept 16x16 supernets near chance)."""
    assert SupernetConfig().crop_padding == 0 and DnasConfig().crop_padding == 4  # DNAS keeps its recipe
    run_dir = tmp_path / "sn"
    main(["supernet", "train", str(space_file), "--batch-size", "25", "--no-progress", "--run-dir", str(run_dir)])
    assert "supernet training: 20 epochs (1,293 images, batch 25)" in capsys.readouterr().err
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(r["epoch"] for r in records if "epoch" in r) == 20  # 51 steps an epoch
    main(["supernet", "train", "--resume", str(run_dir), "--no-progress"])  # resumes the finished run as it was


def test_the_sandwich_trains_the_largest_and_the_smallest_path_every_step(space_file, tmp_path):
    out = train_supernet(
        SupernetConfig(
            space=str(space_file), sampling="sandwich", epochs=1, batch_size=128, run_dir=str(tmp_path / "s"), **FAST
        )
    )
    trained, steps = out.summary["trained_per_candidate"], 1293 // 128
    for layer in trained:  # [ir_k3_e3, ir_k5_e3 (the most parameters), skip (none)]: 4 paths a step
        assert layer[1] >= steps and layer[2] >= steps and sum(layer) == 4 * steps
    with pytest.raises(HwnasError, match="--sampling sandwich trains the largest path and cannot honour a budget"):
        train_supernet(SupernetConfig(space=str(space_file), sampling="sandwich", max_macs=1.0, **FAST))


def test_the_sandwich_distils_every_other_path_from_the_largest_in_place(tmp_path):
    """With one candidate per layer all four sandwich paths are the same network, so the step's loss is the
    largest path's cross-entropy on the labels and three soft cross-entropies to its own softmax (its entropy)."""
    import torch.nn.functional as F

    from hwnas.data import Preprocess, open_dataset, train_val
    from hwnas.strategies.oneshot import SANDWICH_RANDOM, OneShotTrainer
    from hwnas.supernet import Supernet

    one = TINY_SPACE.replace("[ir_k3_e3, ir_k5_e3, skip]", "[ir_k3_e3]").replace("dropout: 0.2", "dropout: 0.0")
    (tmp_path / "one.yaml").write_text(one)
    space = load_space(str(tmp_path / "one.yaml"))
    pools = open_dataset("digits", space.input_size)
    train, val = train_val(pools.train, None, 0.1, 0)
    cfg = SupernetConfig(space=str(tmp_path / "one.yaml"), sampling="sandwich", **FAST)
    pre = Preprocess(space.input_size, pools.mean, pools.std)
    trainer = OneShotTrainer(
        Supernet(space), cfg, train_set=train, val_set=val, preprocess=pre, device=torch.device("cpu")
    )
    batch = train.__getitems__(list(range(32)))
    images, labels = pre(batch, torch.device("cpu")), batch.labels
    with torch.no_grad():
        trainer.supernet.head.classifier.weight.mul_(30)  # confident predictions: entropy and label loss differ
        logits = trainer.supernet(images, [0] * len(space.layers))
    probs = logits.softmax(1)
    entropy = -(probs * logits.log_softmax(1)).sum(1).mean()
    expected = (F.cross_entropy(logits, labels) + (1 + SANDWICH_RANDOM) * entropy) / (2 + SANDWICH_RANDOM)
    assert trainer.train_step(images, labels).loss == pytest.approx(expected.item(), rel=1e-4)
    assert F.cross_entropy(logits, labels).item() != pytest.approx(expected.item(), rel=0.05)  # the labels alone


def test_uniform_paths_respect_allowed_ops_and_budgets():
    space = load_space("proxylessnas", input_size=[3, 32, 32])
    counts = [len(la.candidates) for la in space.layers]
    cfg = SupernetConfig(space="proxylessnas", max_macs=9.0)
    constraints = constraints_for(space, cfg, cost_table(space, cfg, need_latency=False, progress=False))
    rng = random.Random(1)
    for _ in range(200):
        path = within_limits(lambda: uniform_path(counts, rng), constraints.fits)
        assert all(0 <= i < n for i, n in zip(path, counts, strict=True))
        assert all(
            space.layers[k].candidates[i] != "zero" or space.layers[k].c_in == space.layers[k].c_out
            for k, i in enumerate(path)
        )
        assert constraints.cost(path)["macs"] <= 9.0


def test_infeasible_constraint_names_the_cheapest():
    space = load_space("fbnet_small")
    with pytest.raises(
        HwnasError,
        match=r"--max-macs 0.01: no architecture in fbnet_small meets it; the cheapest "
        r"costs .* \(skip, skip",
    ):
        cfg = SupernetConfig(space="fbnet_small", max_macs=0.01)
        constraints_for(space, cfg, cost_table(space, cfg, need_latency=False, progress=False))


def test_non_dominated_sort():
    rng = random.Random(3)
    points = [(rng.random(), rng.random()) for _ in range(60)]
    fronts = non_dominated_sort(points)
    assert sorted(i for f in fronts for i in f) == list(range(60))
    first = fronts[0]
    for i in first:
        assert not any(
            points[j][0] >= points[i][0] and points[j][1] <= points[i][1] and points[j] != points[i] for j in range(60)
        )
    for i in fronts[1]:
        assert any(points[j][0] >= points[i][0] and points[j][1] <= points[i][1] for j in first)


def run_search(space_file, supernet, run_dir, **kw) -> dict:
    """A search of the tiny supernet; one finalist a limit unless `finetune_top` says (the tests of re-ranking)."""
    name = kw.get("strategy", "dnas")
    shortcut = {"finetune_top": 1} if name != "dnas" and "finetune_top" not in kw else {}
    cfg = strategy(name).options(
        space=str(space_file),
        supernet=str(supernet),
        run_dir=str(run_dir),
        eval_images=90,
        recalibrate_batches=2,
        **FAST,
        **shortcut,
        **kw,
    )
    return search(cfg).summary


EVOLUTION = {
    "strategy": "evolution",
    "generation_num": 4,
    "population": 6,
    "parent_num": 2,
    "mutation_num": 3,
    "crossover_num": 3,
}


@pytest.mark.slow
def test_evolution_is_deterministic_and_never_gets_worse(space_file, tiny_supernet, tmp_path):
    a = run_search(space_file, tiny_supernet, tmp_path / "a", **EVOLUTION)
    b = run_search(space_file, tiny_supernet, tmp_path / "b", **EVOLUTION)
    assert a["history"] == b["history"] and a["choices"] == b["choices"]
    best = [h["best_val_top1"] for h in a["history"]]
    assert best == sorted(best) and len(best) == 4
    lines = (tmp_path / "a" / "candidates.jsonl").read_text().splitlines()
    assert len({tuple(json.loads(line)["path"]) for line in lines}) == len(lines)  # nothing evaluated twice


def test_pareto_front_is_non_dominated(space_file, tiny_supernet, tmp_path):
    summary = run_search(
        space_file, tiny_supernet, tmp_path / "p", **{**EVOLUTION, "strategy": "pareto", "pareto_cost": "macs"}
    )
    records = [json.loads(line) for line in (tmp_path / "p" / "candidates.jsonl").read_text().splitlines()]
    front = [r for r in records if r["choices"] in summary["front"]]
    assert front and len(list((tmp_path / "p").glob("front_*.json"))) == len(front)
    for f in front:
        assert not any(
            r["val_top1"] >= f["val_top1"]
            and r["macs"] <= f["macs"]
            and (r["val_top1"], r["macs"]) != (f["val_top1"], f["macs"])
            for r in records
        )
    assert (tmp_path / "p" / "search.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "p" / "candidates.csv").read_text().startswith("val_top1,macs,params")


def test_search_inputs_are_checked(space_file, tiny_supernet, tmp_path):
    with pytest.raises(HwnasError, match="--population 2 is smaller than --parent-num 5"):
        run_search(space_file, tiny_supernet, tmp_path / "x", strategy="evolution", population=2, parent_num=5)
    with pytest.raises(HwnasError, match="needs --supernet RUN_DIR"):
        search(RandomSearchConfig(space=str(space_file)))
    with pytest.raises(HwnasError, match="trained on another space"):
        search(RandomSearchConfig(space="fbnet_small", supernet=str(tiny_supernet), **FAST))
    assert main(["search", str(space_file), "--strategy", "annealing"]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_search_resumes_after_sigkill_with_the_same_result(space_file, tiny_supernet, tmp_path, monkeypatch):
    """Two limits, killed during the second limit's evolution: the resumed run keeps the first limit's finished
    state, continues the second's and ends as the uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable,
        "-m",
        "hwnas",
        "search",
        str(space_file),
        "--strategy",
        "evolution",
        "--supernet",
        str(tiny_supernet),
        "--generation-num",
        "6",
        "--population",
        "6",
        "--parent-num",
        "2",
        "--mutation-num",
        "3",
        "--crossover-num",
        "3",
        "--recalibrate-batches",
        "4",
        "--max-macs",
        "0.13",
        "0.09",
        "--no-progress",
        "--threads",
        "1",
    ]
    run_here([*args[3:], "--run-dir", str(tmp_path / "ref")], None, monkeypatch)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [*args, "--run-dir", str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads((run / "search_state.json").read_text())["searches"][1]["generation"] >= 1:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the search finished before it could be killed"
    done = subprocess.run([*args[:4], "--resume", str(run)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ref = json.loads((tmp_path / "ref" / "result.json").read_text())
    got = json.loads((run / "result.json").read_text())
    assert got["history"] == ref["history"] and got["choices"] == ref["choices"]
    assert [h["limit"] for h in got["history"]] == [{"macs": 0.09}] * 6 + [{"macs": 0.13}] * 6
    assert [(e["limit"], e["choices"]) for e in got["shipped"]] == [(e["limit"], e["choices"]) for e in ref["shipped"]]


@pytest.fixture(scope="session")
def supernets_under_torchrun(tmp_path_factory) -> Path:
    """One torchrun launch (2 ranks) training a supernet per sampling; each rank's paths and weights in
    rank<N>_<sampling>.pt."""

    def build(root: Path) -> None:
        (root / "tiny.yaml").write_text(TINY_SPACE)
        two_rank_results("ddp_oneshot_worker.py", str(root / "tiny.yaml"), "uniform,fair", out=root, suffix="_fair")

    return built_once(tmp_path_factory, "supernets_under_torchrun", build)


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["uniform", "fair"])
def test_every_rank_trains_the_same_paths(supernets_under_torchrun, sampling):
    ranks = rank_results(supernets_under_torchrun, f"_{sampling}")
    assert ranks[0]["paths"] == ranks[1]["paths"] and len(ranks[0]["paths"]) == 1293 // 64
    assert all(
        torch.equal(ranks[0]["model"][k], ranks[1]["model"][k])
        for k in ranks[0]["model"]
        if "running" not in k and "num_batches" not in k
    )


@pytest.mark.slow
def test_evaluation_spread_over_ranks_gives_the_same_search(space_file, tiny_supernet, tmp_path, monkeypatch):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        "-m",
        "hwnas",
        "search",
        str(space_file),
        "--strategy",
        "evolution",
        "--supernet",
        str(tiny_supernet),
        "--generation-num",
        "3",
        "--population",
        "6",
        "--parent-num",
        "2",
        "--mutation-num",
        "3",
        "--crossover-num",
        "3",
        "--eval-images",
        "90",
        "--recalibrate-batches",
        "2",
        "--no-progress",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    run_here([*args[2:], "--run-dir", str(tmp_path / "one")], None, monkeypatch)
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            *args,
            "--run-dir",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one_result = json.loads((tmp_path / "one" / "result.json").read_text())
    two_result = json.loads((tmp_path / "two" / "result.json").read_text())
    assert two_result["history"] == one_result["history"] and two_result["choices"] == one_result["choices"]


MID_SPACE = """
name: mid
knobs: {input_size: [1, 8, 8], num_classes: 10, dropout: 0.0}
stem: [{op: conv_k3, channels: 16, stride: 1}]
candidates: [ir_k3_e3, ir_k5_e3, skip]
stages:
  - {channels: 16, layers: 2, stride: 1}
  - {channels: 24, layers: 3, stride: 2}
head: {op: conv_k1, channels: 64}
"""


@pytest.mark.slow
def test_evolution_on_a_real_supernet_is_no_worse_than_random_at_equal_budget(tmp_path):
    """A 5-layer, 3-choice space on digits: random search gets as many evaluations as evolution made.
    On a supernet this small the two often tie; that evolution beats random by a margin is shown on a
    tabular landscape with a known optimum (tests/test_search_landscape.py) and on the ground truth
    (bench/search_quality.py)."""
    space = tmp_path / "mid.yaml"
    space.write_text(MID_SPACE)
    sup = tmp_path / "sup"
    train_supernet(SupernetConfig(space=str(space), epochs=4, lr=0.05, run_dir=str(sup), **FAST))
    # the pick by inherited accuracy, as the searches rank: no fine-tuned finalists
    shared = {"space": str(space), "supernet": str(sup), "recalibrate_batches": 4, "finetune_epochs": 0, **FAST}
    evo = search(
        EvolutionConfig(
            generation_num=4,
            population=6,
            parent_num=2,
            mutation_num=3,
            crossover_num=3,
            run_dir=str(tmp_path / "e"),
            **shared,
        )
    )
    budget = evo.summary["evaluated"]
    rnd = search(RandomSearchConfig(random_iteration=budget, run_dir=str(tmp_path / "r"), **shared))
    assert rnd.summary["evaluated"] <= budget
    assert evo.summary["val_top1_inherited"] >= rnd.summary["val_top1_inherited"]


def untrained_supernet(space_file: Path, run: Path) -> Path:
    """A run directory holding supernet.pt as `hwnas supernet train` writes it, but freshly initialised."""
    from hwnas.supernet import Supernet

    space = load_space(str(space_file))
    torch.manual_seed(0)
    run.mkdir()
    state = {"model": Supernet(space).state_dict(), "space_fingerprint": space.fingerprint(), "config": {}}
    torch.save(state, run / "supernet.pt")
    return run


def test_supernet_health_warns_on_an_untrained_supernet(space_file, tmp_path, caplog):
    import logging
    import re

    sup = untrained_supernet(space_file, tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="hwnas.strategies.evolution"):
        summary = run_search(space_file, sup, tmp_path / "s", strategy="random", random_iteration=4)
    health = json.loads((tmp_path / "s" / "result.json").read_text())["supernet_health"]
    assert health == summary["supernet_health"]
    assert not health["healthy"] and health["paths"] == 8 and health["chance_top1"] == 10.0
    assert health["mean_top1"] < 19.0 and "will pick at random" in health["message"]
    assert any("will pick at random" in r.getMessage() for r in caplog.records)
    assert len((tmp_path / "s" / "candidates.jsonl").read_text().splitlines()) == 4  # the check's paths stay out
    with pytest.raises(HwnasError, match=re.escape(health["message"]) + " Stopped by --require-healthy"):
        run_search(space_file, sup, tmp_path / "refused", strategy="random", random_iteration=4, require_healthy=True)
    assert not (tmp_path / "refused").exists()


def test_supernet_health_passes_a_trained_supernet(space_file, tiny_supernet, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="hwnas.strategies.evolution"):
        summary = run_search(
            space_file, tiny_supernet, tmp_path / "s", strategy="random", random_iteration=4, require_healthy=True
        )
    health = summary["supernet_health"]
    assert health["healthy"] and health["mean_top1"] >= 19.0 and health["max_top1"] >= health["mean_top1"]
    assert not caplog.records


def test_supernet_health_rule():
    from hwnas.strategies.health import supernet_health

    def verdict(mean: float, classes: int) -> bool:
        return supernet_health(lambda path: mean, lambda: [0], classes, paths=3)["healthy"]

    assert not verdict(18.9, 10) and verdict(19.0, 10)  # chance 10% + 9 points
    assert not verdict(10.8, 100) and verdict(10.9, 100)  # chance 1% + 9.9 points
    assert not verdict(54.9, 2) and verdict(55.0, 2)  # chance 50% + at least 5 points
    drawn = iter([[0], [1], [2]])
    health = supernet_health(lambda path: 30.0 * path[0], lambda: next(drawn), 10, paths=3)
    assert health["mean_top1"] == 30.0 and health["max_top1"] == 60.0 and json.loads(json.dumps(health)) == health


def test_theta_health():
    from hwnas.strategies.health import theta_health

    start = [torch.zeros(3, 4), torch.zeros(2, 3)]
    moved = [torch.zeros(3, 4), torch.tensor([[0.0, 0.5, 0.0], [0.0, -0.75, 0.0]])]
    health = theta_health(start, moved, updates=12)
    assert health["healthy"] and health["updates"] == 12 and health["max_change"] == 0.75
    assert json.loads(json.dumps(health)) == health
    still = theta_health(start, [t.clone() for t in start], updates=12)
    assert not still["healthy"] and still["max_change"] == 0.0 and "did not move in 12 updates" in still["message"]
    never = theta_health(start, moved, updates=0)
    assert not never["healthy"] and "never updated" in never["message"]
    assert not theta_health(start, [t + 1e-8 for t in start], updates=5)["healthy"]


@pytest.mark.slow
def test_dnas_starts_from_a_trained_supernet(space_file, tiny_supernet, tmp_path):
    """Differentiable search on a trained SPOS supernet: its weights are where DNAS starts (lr ~0 keeps them)."""

    run = tmp_path / "dnas"
    cfg = DnasConfig(
        space=str(space_file),
        supernet=str(tiny_supernet),
        mode="gumbel_hard",
        epochs=1,
        weight_warmup_epochs=0,
        lr=1e-12,
        cost="macs",
        run_dir=str(run),
        **{**FAST, "checkpoint_every": 1},
    )
    summary = search(cfg).summary
    assert json.loads((run / "arch.json").read_text())["meta"]["supernet"] == str(tiny_supernet)
    started = torch.load(tiny_supernet / "supernet.pt", weights_only=True)["model"]
    ended = torch.load(next((run / "checkpoints").glob("epoch_*.pt")), weights_only=True)["model"]
    convs = [k for k in started if k.endswith("weight") and started[k].dim() == 4]
    assert convs and all(torch.allclose(started[k], ended[k], atol=1e-6) for k in convs)
    assert summary["val_top1_inherited"] is not None
    with pytest.raises(HwnasError, match="trained on another space"):
        search(DnasConfig(space="fbnet_small", supernet=str(tiny_supernet), run_dir=str(tmp_path / "x"), **FAST))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_search_over_a_supernet_ships_the_pick_with_its_inherited_weights(
    space_file, tiny_supernet, tmp_path, capsys
):
    """model.pt: the pick's weights out of the supernet, BatchNorm re-estimated on the training split; `hwnas
    eval` of it gives the held-out figure the search reports, and export and predict take it."""
    from PIL import Image

    from hwnas import export_model, predict
    from hwnas.strategies.inherited import RECALIBRATION_BATCHES

    run = tmp_path / "run"
    summary = run_search(space_file, tiny_supernet, run, strategy="random", random_iteration=4)
    capsys.readouterr()
    [shipped] = summary["shipped"]  # one network: no limit
    assert shipped["weights"] == "model.pt" and shipped["arch"] == "arch.json" and shipped["limit"] == {}
    assert shipped["test_images"] == 360  # the digits' held-out test pool
    assert 0 < shipped["recalibration_batches"] <= RECALIBRATION_BATCHES
    assert shipped["test_top1"] > 20  # a trained supernet's path: well above chance (10%)
    assert shipped["choices"] == summary["choices"] and shipped["val_top1_inherited"] == summary["val_top1_inherited"]
    assert f"test top-1 {shipped['test_top1']:.2f}%" in shipped["note"]
    assert shipped["finetune_epochs"] >= 2 and f"fine-tuned {shipped['finetune_epochs']} epochs" in shipped["note"]
    assert (
        shipped["retrain"].startswith(f"hwnas train {run / 'arch.json'} --data digits")
        and shipped["retrain"] in shipped["note"]
    )
    arch, weights = run / "arch.json", run / "model.pt"
    assert main(["eval", str(arch), "--weights", str(weights), "--run-dir", str(tmp_path / "ev")]) == 0
    assert json.loads(capsys.readouterr().out)["val_top1"] == pytest.approx(shipped["test_top1"])
    assert export_model(arch, tmp_path / "pick.onnx", weights=weights)["max_abs_diff"] < 1e-4
    Image.new("L", (8, 8), 0).save(tmp_path / "blank.png")
    assert len(predict(arch, weights, tmp_path / "blank.png", top_k=2)[0]["top"]) == 2


def test_finetune_epochs_0_ships_the_inherited_weights_and_the_default_tunes_them(space_file, tiny_supernet, tmp_path):
    """--finetune-epochs 0: the path's weights as the supernet has them (BatchNorm re-estimated); unset, the pick
    trains a few epochs from there before it is measured and written, and result.json says how many."""
    from hwnas.supernet import Supernet, extract_model

    plain = run_search(
        space_file, tiny_supernet, tmp_path / "a", strategy="random", random_iteration=4, finetune_epochs=0
    )
    tuned = run_search(space_file, tiny_supernet, tmp_path / "b", strategy="random", random_iteration=4, finetune_top=1)
    assert plain["choices"] == tuned["choices"]
    [inherited], [finetuned] = plain["shipped"], tuned["shipped"]
    assert inherited["finetune_epochs"] == 0 and "fine-tuned" not in inherited["note"]
    assert finetuned["finetune_epochs"] >= 2 and "fine-tuned" in finetuned["note"]
    supernet = Supernet(load_space(str(space_file)))
    supernet.load_state_dict(torch.load(tiny_supernet / "supernet.pt", weights_only=True)["model"])
    convs = {k: v for k, v in extract_model(supernet, plain["choices"]).state_dict().items() if k.endswith("weight")}
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], v) for k, v in convs.items())
    assert any(not torch.equal(b[k], v) for k, v in convs.items())


LIMITS = [0.09, 0.05, 0.13]  # MACs (millions) of the tiny space's 27 paths: 0.015 to 0.129; 5 fit 0.05, 16 fit 0.09


def check_finalists(run: Path, entry: dict, top: int = 3) -> None:
    """A shipped entry's finalists are the `top` most accurate evaluated candidates within its limit (inherited
    weights, best first), and it ships the one most accurate on the validation split after fine-tuning."""
    limit = entry["limit"]["macs"]
    records = [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]
    best = sorted((r["val_top1"] for r in records if r["macs"] <= limit * 1e6), reverse=True)[:top]
    finalists = entry["finalists"]
    assert [f["val_top1_inherited"] for f in finalists] == best
    chosen = max(finalists, key=lambda f: f["val_top1_finetuned"])
    assert entry["choices"] == chosen["choices"] and entry["val_top1_inherited"] == chosen["val_top1_inherited"]


@pytest.mark.slow
def test_one_search_ships_one_network_per_limit(space_file, tiny_supernet, tmp_path):
    """evolution with --max-macs A B C: one evolution per limit over one shared cache, a network per limit under
    limit_<i>/ (tightest first), each the best after fine-tuning of the 3 most accurate candidates within its limit
    (inherited weights); arch.json and model.pt at the
    top level are the loosest limit's, so Outcome.model() and commands that take a run directory keep working."""
    from hwnas.arch import Architecture
    from hwnas.pipeline import Outcome

    run = tmp_path / "run"
    summary = run_search(space_file, tiny_supernet, run, **EVOLUTION, max_macs=LIMITS, finetune_top=3)
    shipped = summary["shipped"]
    assert [e["limit"] for e in shipped] == [{"macs": 0.05}, {"macs": 0.09}, {"macs": 0.13}]
    for i, entry in enumerate(shipped):
        assert entry["arch"] == f"limit_{i}/arch.json" and entry["weights"] == f"limit_{i}/model.pt"
        assert (run / entry["weights"]).is_file() and entry["inherited"] is True
        arch = Architecture.load(run / entry["arch"])
        assert list(arch.choices) == entry["choices"] and arch.meta["limit"] == entry["limit"]
        assert entry["macs"] <= entry["limit"]["macs"] * 1e6
        check_finalists(run, entry)
        assert entry["test_images"] == 360 and f"test top-1 {entry['test_top1']:.2f}%" in entry["note"]
        assert entry["retrain"] == f"hwnas train {run / entry['arch']} --data digits --input 1x8x8 --epochs 10"
    assert summary["choices"] == shipped[-1]["choices"]
    assert summary["val_top1_inherited"] == shipped[-1]["val_top1_inherited"]
    assert list(Architecture.load(run / "arch.json").choices) == shipped[-1]["choices"]
    assert (run / "model.pt").read_bytes() == (run / "limit_2" / "model.pt").read_bytes()
    assert json.loads((run / "result.json").read_text())["shipped"] == shipped
    Outcome(run, run / "arch.json").model()  # the loosest pick with its weights
    state = json.loads((run / "search_state.json").read_text())
    assert [s["limit"] for s in state["searches"]] == [e["limit"] for e in shipped]
    assert all(s["generation"] == EVOLUTION["generation_num"] for s in state["searches"])
    lines = (run / "candidates.jsonl").read_text().splitlines()
    assert len({tuple(json.loads(line)["path"]) for line in lines}) == len(lines)  # one cache: nothing twice


def test_one_limit_ships_a_list_of_one_from_the_command_line(space_file, tiny_supernet, tmp_path, caplog):
    import logging

    run = tmp_path / "run"
    args = ["search", str(space_file), "--strategy", "random", "--supernet", str(tiny_supernet)]
    args += ["--random-iteration", "4", "--eval-images", "90", "--recalibrate-batches", "2", "--no-progress"]
    with caplog.at_level(logging.INFO, logger="hwnas"):
        assert main([*args, "--max-macs", "0.09", "--run-dir", str(run)]) == 0
    [entry] = json.loads((run / "result.json").read_text())["shipped"]
    assert entry["limit"] == {"macs": 0.09} and entry["arch"] == "arch.json" and entry["weights"] == "model.pt"
    assert entry["macs"] <= 0.09e6 and not (run / "limit_0").exists()
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("shipped")]
    assert len(said) == 1 and "--max-macs 0.09" in said[0] and str(run / "model.pt") in said[0]
    assert f"test top-1 {entry['test_top1']:.2f}%" in said[0] and "hwnas train" in said[0]


@pytest.mark.slow
def test_random_and_pareto_pick_each_limit_from_one_search(space_file, tiny_supernet, tmp_path):
    """random and pareto search once within the loosest limit; each limit ships the best of its finalists."""
    for name, options in (("random", {"random_iteration": 8}), ("pareto", {**EVOLUTION, "pareto_cost": "macs"})):
        run = tmp_path / name
        summary = run_search(
            space_file, tiny_supernet, run, **{**options, "strategy": name}, max_macs=[0.05, 0.13], finetune_top=3
        )
        assert [e["limit"] for e in summary["shipped"]] == [{"macs": 0.05}, {"macs": 0.13}]
        for entry in summary["shipped"]:
            check_finalists(run, entry)
        if name == "pareto":  # one search, within the loosest limit
            assert len(json.loads((run / "search_state.json").read_text())["searches"]) == 1


def test_several_values_for_two_limits_are_refused(space_file, tiny_supernet, tmp_path, caplog):
    args = ["search", str(space_file), "--strategy", "evolution", "--supernet", str(tiny_supernet)]
    run = ["--run-dir", str(tmp_path / "x")]
    assert main([*args, "--max-macs", "0.05", "0.1", "--max-latency", "1", "2", *run]) == 2
    assert "--max-macs and --max-latency both got several values" in caplog.text
    assert "expected several values for one limit at most" in caplog.text
    assert main([*args, "--max-macs", "0.05", "0.05", *run]) == 2
    assert "expected distinct values" in caplog.text
    assert main([*args, "--max-params", "1", "0", *run]) == 2
    import hwnas

    options = {"strategy": "random", "supernet": str(tiny_supernet), "run_dir": str(tmp_path / "x")}
    with pytest.raises(HwnasError, match="--max-params and --max-latency both got several values"):
        hwnas.search(str(space_file), **options, max_params=[1, 2], max_latency=[1, 2])
    with pytest.raises(HwnasError, match="max_macs: got inf, expected a finite number"):
        hwnas.search(str(space_file), **options, max_macs=[1, float("inf")])
    assert not (tmp_path / "x").exists()
    sorted_cfg = EvolutionConfig(max_macs=[3, 1, 2], max_params=4)
    from hwnas.engine.config import check_config

    assert (
        check_config(sorted_cfg).max_macs == [1.0, 2.0, 3.0]
        and check_config(EvolutionConfig(max_macs=[3])).max_macs == 3.0
    )


def test_supernet_health_is_the_same_under_every_budget(space_file, tiny_supernet, tmp_path):
    """The health paths come from the whole space with a fixed seed: a tight and a loose budget get the same verdict
    and figures; only the information on the paths within each limit differs."""
    tight = run_search(space_file, tiny_supernet, tmp_path / "t", strategy="random", random_iteration=2, max_macs=0.05)
    loose = run_search(
        space_file, tiny_supernet, tmp_path / "l", strategy="random", random_iteration=2, max_macs=[0.09, 0.13]
    )
    a, b = tight["supernet_health"], loose["supernet_health"]
    assert (a["healthy"], a["mean_top1"], a["max_top1"], a["paths"]) == (b["healthy"], b["mean_top1"], b["max_top1"], 8)
    assert [w["limit"] for w in a["within_limits"]] == [{"macs": 0.05}]
    assert [w["limit"] for w in b["within_limits"]] == [{"macs": 0.09}, {"macs": 0.13}]
    assert b["within_limits"][1]["paths_within"] == 8  # every path fits the loosest
    assert b["within_limits"][1]["mean_top1"] == pytest.approx(b["mean_top1"])
    assert "--max-macs 0.13: 8 of them fit" in b["message"]
