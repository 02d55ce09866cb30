"""DARTS/CNAS cell search: α gradients (first and second order), derivation, hardware cost, runs, resume, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost.build import build_table
from hwnas.cost.cell_cost import CellCostModel
from hwnas.cost.interleaved import QUICK_ROUNDS
from hwnas.model import build_model
from hwnas.spaces import load_space
from hwnas.strategies.derive import derive_genotype
from hwnas.strategies.unrolled import unrolled_arch_gradient
from hwnas.supernet.cell_supernet import CellArchParams, CellSupernet, edge_index, edge_inputs
from tests.fake_data import write_cifar
from tests.helpers import kill_after_checkpoint, run_here, two_rank_results

TINY = {"input_size": [1, 8, 8], "init_channels": 4, "layers": 3, "nodes": 2}
SEARCH = [
    "--input", "3x8x8", "--init-channels", "4", "--layers", "3", "--num-meta-node", "2", "--batch-size", "16",
    "--eval-init-channels", "4", "--eval-layers", "3", "--no-progress", "--device", "cpu", "--workers", "0",
]  # fmt: skip
OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3")


def _env(tmp_path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HWNAS_CACHE_DIR": str(tmp_path / "cache")}


@pytest.mark.parametrize("partial", [1, 2])
def test_alpha_and_beta_get_gradients(partial):
    torch.manual_seed(0)
    space = load_space("darts", **{**TINY, "init_channels": 8})
    net = CellSupernet(space, partial)
    arch = CellArchParams(space, edge_norm=partial > 1)
    F.cross_entropy(net(torch.randn(4, 1, 8, 8), arch.weights()), torch.arange(4)).backward()
    params = dict(arch.named_parameters())
    assert set(params) == (
        {"alpha.normal", "alpha.reduce"} | ({"beta.normal", "beta.reduce"} if partial > 1 else set())
    )
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    edges = len(edge_inputs(2))
    assert params["alpha.normal"].shape == (edges, len(space.ops))


def test_second_order_gradient_matches_a_direct_autograd_computation():
    torch.manual_seed(0)
    space = load_space("darts", **TINY, ops=["none", "skip_connect", "sep_conv_3x3", "avg_pool_3x3"])
    net = CellSupernet(space).double()
    arch = CellArchParams(space).double()
    with torch.no_grad():
        for a in arch.parameters():
            a.normal_()
    x_t, x_v = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randn(6, 1, 8, 8, dtype=torch.float64)
    y_t, y_v = torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,))
    lr, momentum, decay = 0.1, 0.9, 3e-4
    buffers = {n: 0.01 * torch.randn_like(p) for n, p in net.named_parameters()}
    alphas = list(arch.parameters())
    # a small finite-difference step: DARTS's 0.01 crosses ReLU / max-pool kinks of this tiny random network
    approx, _, _ = unrolled_arch_gradient(
        net, alphas, lambda x: (x, arch.weights()), F.cross_entropy, (x_t, y_t), (x_v, y_v),
        lr=lr, momentum=momentum, weight_decay=decay, momentum_buffers=buffers, epsilon=1e-5,
    )  # fmt: skip

    params = dict(net.named_parameters())
    train_loss = F.cross_entropy(functional_call(net, params, (x_t, arch.weights())), y_t)
    grads = torch.autograd.grad(train_loss, list(params.values()), create_graph=True)
    unrolled = {
        n: p - lr * (g + decay * p + momentum * buffers[n]) for (n, p), g in zip(params.items(), grads, strict=True)
    }
    val_loss = F.cross_entropy(functional_call(net, unrolled, (x_v, arch.weights())), y_v)
    exact = torch.autograd.grad(val_loss, alphas)
    first_order = torch.autograd.grad(
        F.cross_entropy(functional_call(net, {n: u.detach() for n, u in unrolled.items()}, (x_v, arch.weights())), y_v),
        alphas,
    )
    for a, e, f in zip(approx, exact, first_order, strict=True):
        assert torch.allclose(a, e, rtol=1e-3, atol=1e-7), (a - e).abs().max()
        assert (e - f).abs().max() > 1e-3 * e.abs().max()  # the Hessian term matters: dropping it would fail


def _strengths(picks: dict[tuple[int, int], tuple[str, float]], ops=OPS, nodes=3) -> torch.Tensor:
    """[edges x ops] strengths: 0.01 everywhere, plus the given (node, input) -> (op, value)."""
    inputs = edge_inputs(nodes)
    w = torch.full((len(inputs), len(ops)), 0.01)
    for (node, state), (op, value) in picks.items():
        w[inputs.index((node, state)), ops.index(op)] = value
    return w


def test_derivation_keeps_the_two_strongest_non_none_edges_per_node():
    normal = _strengths(
        {
            (0, 0): ("sep_conv_3x3", 0.5),
            (0, 1): ("skip_connect", 0.4),
            (1, 0): ("none", 0.9),  # strongest overall, but `none` does not count in DARTS mode
            (1, 1): ("max_pool_3x3", 0.3),
            (1, 2): ("dil_conv_3x3", 0.6),
            (2, 3): ("sep_conv_5x5", 0.7),
            (2, 1): ("avg_pool_3x3", 0.2),
        }
    )
    g = derive_genotype({"normal": normal, "reduce": normal}, OPS, 3)
    assert g.normal == (
        ("sep_conv_3x3", 0),
        ("skip_connect", 1),
        ("dil_conv_3x3", 2),
        ("max_pool_3x3", 1),
        ("sep_conv_5x5", 3),
        ("avg_pool_3x3", 1),
    )
    assert g.normal_concat == (2, 3, 4)
    sparse = derive_genotype({"normal": normal, "reduce": normal}, OPS, 3, sparse=True)
    assert sparse.normal[2:4] == (("none", 0), ("dil_conv_3x3", 2))


def test_max_skip_strikes_the_weakest_skips():
    normal = _strengths(
        {
            (0, 0): ("skip_connect", 0.5),
            (0, 1): ("skip_connect", 0.6),
            (1, 0): ("skip_connect", 0.3),
            (1, 2): ("sep_conv_3x3", 0.4),
            (2, 3): ("skip_connect", 0.9),
            (2, 1): ("dil_conv_3x3", 0.2),
        }
    )
    strengths = {"normal": normal, "reduce": normal}
    assert derive_genotype(strengths, OPS, 3).count("skip_connect") == 4
    capped = derive_genotype(strengths, OPS, 3, max_skip=2)
    assert capped.count("skip_connect") == 2
    assert {e for e in capped.normal if e[0] == "skip_connect"} == {("skip_connect", 1), ("skip_connect", 3)}
    assert capped.count("skip_connect", "reduce") == 4  # P-DARTS limits the normal cell only


def test_expected_cost_counts_two_inputs_per_node_and_prices_the_network_exactly():
    space = load_space("darts", **{**TINY, "init_channels": 8})
    table = build_table(space, measure=False, progress=False)
    cost = CellCostModel.from_table(table, space, "macs")
    arch = CellArchParams(space)
    with torch.no_grad():  # every edge decided: max_pool on even edges, sep_conv on odd ones
        for t in ("normal", "reduce"):
            arch.alpha[t].fill_(-30)
            for e in range(len(edge_inputs(space.nodes))):
                arch.alpha[t][e, space.ops.index("sep_conv_3x3" if e % 2 else "max_pool_3x3")] = 30
    probs = arch.op_probs()
    share = torch.tensor([1, 1, 2 / 3, 2 / 3, 2 / 3])  # node 0 has 2 inputs, node 1 has 3 and keeps 2
    by_hand = cost.fixed + sum(float((share * (probs[t] * cost.costs[t]).sum(-1)).sum().detach()) for t in probs)
    assert float(cost.expected(probs, {"normal": None, "reduce": None}).detach()) == pytest.approx(by_hand, rel=1e-5)
    genotype = derive_genotype(arch.strengths(), space.ops, space.nodes)  # ties: node 1 keeps inputs 0 and 1
    assert genotype.normal == (("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_3x3", 1))
    kept = {t: torch.tensor([0.5, 0.5, 0.5, 0.5, 1e-12]) for t in probs}  # edge weights that keep those edges
    assert float(cost.expected(probs, kept).detach()) == pytest.approx(cost.of(genotype), rel=1e-5)
    model = build_model(Architecture.from_genotype(space, genotype))
    params = CellCostModel.from_table(table, space, "params").of(genotype) * 1e6
    assert params == pytest.approx(sum(p.numel() for p in model.parameters()))


@pytest.mark.slow
def test_a_cost_on_alpha_moves_it_toward_cheaper_ops():
    """The same α steps on the same batch lower the expected MACs when λ > 0, and not when λ = 0."""
    from hwnas.cost.hardware_loss import HardwareLoss
    from hwnas.data import Preprocess, open_dataset, search_split, train_val
    from hwnas.strategies.config import DartsConfig
    from hwnas.strategies.darts import DartsTrainer

    space = load_space("darts", **{**TINY, "init_channels": 8})
    cost = CellCostModel.from_table(build_table(space, measure=False, progress=False), space, "macs")
    pools = open_dataset("digits", space.input_size)
    weights, arch_set = search_split(train_val(pools.train, None, 0.1, 0)[0], 0.5, 0)
    x, y = torch.randn(8, 1, 8, 8), torch.arange(8)
    ends = []
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        trainer = DartsTrainer(
            CellSupernet(space), DartsConfig(batch_size=16, arch_lr=0.1, progress=False),
            weight_set=weights, arch_set=arch_set, val_set=weights, device=torch.device("cpu"),
            preprocess=Preprocess(space.input_size, pools.mean, pools.std),
            cost=cost, hardware_loss=HardwareLoss("add", weight=weight),
        )  # fmt: skip
        start = float(cost.expected(trainer.arch.op_probs(), trainer.arch.edge_probs()).detach())
        for _ in range(10):
            trainer.arch_step(x, y, x, y)
        ends.append(float(cost.expected(trainer.arch.op_probs(), trainer.arch.edge_probs()).detach()))
    assert ends[1] < 0.9 * start and ends[1] < 0.9 * ends[0], (start, ends)


@pytest.mark.slow
def test_search_on_fake_cifar_writes_genotype_heat_map_and_drawings(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    run = tmp_path / "run"
    code = main(["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1", "--run-dir", str(run)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    arch = Architecture.load(run / "arch.json")
    assert arch.is_cell and arch.space_args["init_channels"] == 4 and arch.meta["strategy"] == "darts"
    assert Architecture.load(run / "genotypes" / "epoch_001.json").genotype == arch.genotype
    assert (run / "alpha.png").read_bytes().startswith(b"\x89PNG")
    for cell in ("normal", "reduce"):
        assert "digraph" in (run / "cells" / f"{cell}.dot").read_text()
        assert (run / "cells" / f"{cell}.png").read_bytes().startswith(b"\x89PNG")
    epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert epoch["kind"] == "epoch" and "arch_loss" in epoch and "skip_normal" in epoch
    assert len(epoch["edge_entropy"]["normal"]) == 5 and 0 < epoch["alpha_entropy_normal"] <= 2.08
    assert summary["params"] > 0 and summary["measured_latency_ms"] > 0 and "hwnas train" in summary["retrain"]
    assert build_model(arch)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


@pytest.mark.slow
def test_cnas_sparse_search_with_a_latency_table_then_retrain_with_auxiliary_and_drop_path(tmp_path, capsys):
    eval_space = load_space("cnas", input_size=[3, 16, 16], init_channels=16, layers=5, nodes=2, num_classes=4)
    # no whole-network offset: fitted while the suite loads the cores it can price a small genotype below 0 ms
    table = build_table(eval_space, policy=QUICK_ROUNDS, progress=False, calibration=0).save(tmp_path / "table.json")
    run = tmp_path / "run"
    args = [*SEARCH, "--input", "3x16x16", "--init-channels", "16", "--eval-init-channels", "16", "--eval-layers", "5"]
    code = main(
        ["search", "cnas", *args, "--epochs", "1", "--use-sparse", "--cost", "latency", "--hc-weight", "0.1",
         "--latency-table", str(table), "--classes", "4", "--run-dir", str(run)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cost_metric"] == "latency" and summary["predicted_cost"] > 0
    config = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert config["lr_min"] == 0.003 and config["epochs"] == 1  # the space's search_defaults, under the flags
    train_dir = tmp_path / "train"
    code = main(
        ["train", str(run / "arch.json"), "--data", "digits", "--classes", "3", "--input", "3x32x32", "--epochs", "1",
         "--batch-size", "64", "--auxiliary", "--drop-path-prob", "0.2", "--no-progress", "--device", "cpu",
         "--run-dir", str(train_dir)]
    )  # fmt: skip
    assert code == 0
    trained = Architecture.load(train_dir / "arch.json")
    assert trained.space_args["auxiliary"] is True and trained.space_args["input_size"] == [3, 32, 32]
    assert trained.genotype == Architecture.load(run / "arch.json").genotype
    assert json.loads(capsys.readouterr().out)["best"]["val_top1"] >= 0


def test_bad_search_and_train_input_gets_one_line(tmp_path, capsys):
    assert main(["search", "darts", *SEARCH, "--layers", "2"]) == 2
    assert "layers: got 2, expected an integer in 3..1000" in capsys.readouterr().err
    assert main(["search", "darts", *SEARCH, "--ops", "sep_conv_3x3,conv_7x1"]) == 2
    assert "unknown op 'conv_7x1'" in capsys.readouterr().err
    assert main(["search", "darts", *SEARCH, "--cost", "macs", "--target", "0.00001"]) == 2
    assert "no architecture in this space meets it; the cheapest costs" in capsys.readouterr().err
    assert main(["supernet", "train", "darts"]) == 2
    assert "is a cell space" in capsys.readouterr().err
    assert main(["train", "mobilenet_v2", "--layers", "8"]) == 2
    assert "--layers applies to cell-space architectures" in capsys.readouterr().err


def _alpha_of(run: Path) -> dict:
    from hwnas.engine.checkpoint import CheckpointStore

    _, state = CheckpointStore(run / "checkpoints").load_latest()
    return {k: v.tolist() for k, v in state["extra"]["arch"]["params"].items()}


@pytest.mark.slow
def test_search_resumes_after_sigkill_with_the_same_alpha(tmp_path, monkeypatch):
    args = [
        "search", "darts", "--data", "digits", "--classes", "2", *SEARCH, "--input", "1x8x8", "--batch-size", "32",
        "--epochs", "2", "--checkpoint-every", "2", "--arch-lr", "0.01", "--threads", "1",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "hwnas"]
    env = _env(tmp_path)
    run_here([*args, "--run-dir", str(tmp_path / "ref")], tmp_path / "cache", monkeypatch)
    run = tmp_path / "run"
    kill_after_checkpoint([*cmd, *args, "--run-dir", str(run)], run, "epoch_001", env)
    done = subprocess.run([*cmd, "search", "--resume", str(run)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _alpha_of(run) == _alpha_of(tmp_path / "ref")
    assert (
        json.loads((run / "result.json").read_text())["genotype"]
        == json.loads((tmp_path / "ref" / "result.json").read_text())["genotype"]
    )


@pytest.mark.slow
def test_every_rank_derives_the_same_genotype(tmp_path):
    ranks = two_rank_results("ddp_darts_worker.py", out=tmp_path)
    for key, value in ranks[0]["alpha"].items():
        assert torch.equal(value, ranks[1]["alpha"][key]), key
    assert ranks[0]["genotype"] == ranks[1]["genotype"]
    assert any((v - v.mean()).abs().max() > 1e-3 for v in ranks[0]["alpha"].values())  # α did move


@pytest.mark.parametrize(
    ("name", "search"),
    [("darts_cifar10_eval.yaml", False), ("darts_imagenet_eval.yaml", False), ("darts_search.yaml", True),
     ("cnas_search.yaml", True)],
)  # fmt: skip
def test_ready_made_configs_parse(name, search):
    from hwnas.engine.config import TrainConfig, check_config, read_yaml_config
    from hwnas.strategies.config import DartsConfig

    cls = DartsConfig if search else TrainConfig
    values = read_yaml_config(Path(__file__).parents[1] / "configs" / name, cls)
    check_config(cls(**values))
    if name == "darts_search.yaml":  # it says it holds the defaults
        assert all(getattr(DartsConfig(), k) == v for k, v in values.items())


@pytest.mark.slow
def test_a_genotype_trains_under_torchrun_with_its_auxiliary_head(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "hwnas", "train",
         "darts_v2", "--input", "1x32x32", "--classes", "2", "--init-channels", "4", "--layers", "3", "--auxiliary",
         "--drop-path-prob", "0.2", "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--no-progress",
         "--run-dir", str(run)],
        env=_env(tmp_path), capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[:4000] + "\n[...]\n" + result.stderr[-1500:]  # ranks first
    assert json.loads(result.stdout)["run_dir"] == str(run)  # rank 0 alone reports
    arch = Architecture.load(run / "arch.json")
    assert arch.space_args["auxiliary"] is True and arch.space_args["layers"] == 3
    model = build_model(arch)
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 2)


def test_latency_tables_of_cell_spaces_validate_against_whole_networks(capsys):
    from hwnas.cost.validate import validate_table
    from hwnas.report.tables import cell_latency_table

    space = load_space("darts", **TINY)
    table = build_table(space, policy=QUICK_ROUNDS, progress=False)
    report = validate_table(space, table, samples=4, policy=QUICK_ROUNDS, progress=False)
    assert len(report.measured_ms) == 4 and all(p > 0 for p in report.predicted_ms)
    assert all(m > 0 for m in report.measured_ms) and -1 <= report.spearman <= 1
    text = cell_latency_table(space, table)
    assert "sep_conv_3x3" in text and "4x8x8/s1" in text and "cheapest genotype" in text


@pytest.mark.slow
def test_second_order_partial_channel_search_runs_under_bf16_autocast(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["search", "darts", "--data", "digits", "--classes", "3", *SEARCH, "--input", "1x8x8", "--epochs", "1",
         "--amp", "bf16", "--sec-approx", "--partial-channels", "2", "--max-skip", "1", "--run-dir", str(run)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skip_normal"] <= 1
    epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert epoch["arch_top1"] > 0 and all(len(row) == len(OPS) + 1 for row in epoch["alpha"]["normal"])
    assert (run / "tb").is_dir()


@pytest.mark.slow
def test_cnas_searches_with_its_default_evaluation_width(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        ["search", "cnas", "--data", "digits", "--classes", "3", "--input", "1x8x8", "--init-channels", "16",
         "--layers", "3", "--num-meta-node", "2", "--batch-size", "32", "--eval-layers", "3", "--epochs", "1",
         "--no-progress", "--device", "cpu", "--workers", "0", "--run-dir", str(run)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    width = Architecture.load(run / "arch.json").space_args["init_channels"]
    assert width == 48 and width % 16 == 0


def test_cnas_names_the_evaluation_widths_that_fit_its_ops(tmp_path, capsys):
    widths = ["--init-channels", "16", "--eval-init-channels", "36"]
    assert main(["search", "cnas", *SEARCH, *widths, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "divisible by 16" in err and "expected e.g. 32 or 48" in err and len(err.strip().splitlines()) == 1


def test_beta_decay_term_pulls_every_logit_down_by_its_softmax_share():
    arch = CellArchParams(load_space("darts", **TINY))
    with torch.no_grad():
        arch.alpha["normal"][0, 4] += 2.0
    arch.beta_decay().backward()
    edges = sum(a.shape[0] for a in arch.alpha.values())
    for a in arch.alpha.values():
        torch.testing.assert_close(a.grad, F.softmax(a.detach(), -1) / edges)


@pytest.mark.slow
def test_beta_decay_keeps_alpha_closer_to_uniform(tmp_path):
    """β-DARTS's regulariser: the same search with it leaves α's strongest op less far ahead than without."""
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    leads = {}
    for decay in (0.0, 200.0):
        argv = ["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "2", "--arch-lr", "0.05"]
        argv += ["--beta-decay", str(decay), "--run-dir", str(tmp_path / f"decay{decay:g}")]
        assert main(argv) == 0
        summary = json.loads((tmp_path / f"decay{decay:g}" / "result.json").read_text())
        leads[decay] = summary["alpha_health"]["lead"]
    assert leads[200.0] < 0.8 * leads[0.0], leads


@pytest.mark.slow
def test_a_search_whose_alpha_stayed_uniform_is_unhealthy(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    argv = ["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1", "--arch-lr", "1e-5"]
    assert main([*argv, "--run-dir", str(tmp_path / "still")]) == 0
    health = json.loads(capsys.readouterr().out)["alpha_health"]
    assert health["max_change"] > 1e-6 and health["lead"] < 0.01  # it moved, but the mixture stayed uniform
    assert not health["healthy"] and "stayed uniform" in health["message"]
    assert health["entropy"] == pytest.approx(health["uniform_entropy"], abs=1e-4)
    assert main([*argv[:-1], "0.05", "--run-dir", str(tmp_path / "moved")]) == 0
    assert json.loads(capsys.readouterr().out)["alpha_health"]["healthy"]


def test_alpha_health_flags_a_mixture_that_stayed_uniform():
    from hwnas.strategies.health import alpha_health

    start = [torch.zeros(5, 4)]
    for step, healthy in ((0.005, False), (0.5, True)):
        final = [start[0].clone()]
        final[0][2, 1] = step
        health = alpha_health(start, final, 30, [F.softmax(final[0], -1)])
        assert health["healthy"] is healthy and health["max_change"] == pytest.approx(step)
        assert json.loads(json.dumps(health)) == health
    assert "stayed uniform" in alpha_health(start, [start[0] + 1e-3], 30, [F.softmax(start[0], -1)])["message"]


def test_dirichlet_alpha_draws_a_new_mixture_every_step_and_learns_through_it():
    """DrNAS: mixtures drawn from Dirichlet(elu(α) + 1), reparameterised; its mean stands for α; a KL anchor."""
    arch = CellArchParams(load_space("darts", **TINY), mode="dirichlet")
    assert arch.dirichlet_anchor().item() == pytest.approx(0.0, abs=1e-5)  # near α = 0: the uniform Dirichlet
    first, second = arch.weights().ops["normal"], arch.weights().ops["normal"]
    assert not torch.allclose(first, second)
    torch.testing.assert_close(first.sum(-1), torch.ones(first.shape[0]))
    (first[:, 4].sum() + arch.dirichlet_anchor()).backward()
    assert arch.alpha["normal"].grad.abs().sum() > 0
    concentration = F.elu(arch.alpha["normal"].detach()) + 1
    torch.testing.assert_close(arch.mean_weights().ops["normal"].detach(), concentration / concentration.sum(-1, True))
    plain = CellArchParams(load_space("darts", **TINY))
    torch.testing.assert_close(plain.weights().ops["normal"], plain.weights().ops["normal"])


@pytest.mark.slow
def test_a_dirichlet_search_writes_a_genotype_and_refuses_the_second_order(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    argv = ["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1", "--mode", "dirichlet"]
    assert main([*argv, "--sec-approx", "--run-dir", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "--sec-approx" in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()
    assert main([*argv, "--arch-lr", "0.05", "--run-dir", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alpha_health"]["healthy"] and Architecture.load(tmp_path / "run" / "arch.json").genotype


def test_perturbation_keeps_the_ops_and_edges_whose_removal_costs_most():
    """DARTS-PT on a made-up network whose score is Σ importance · weight: it keeps the important op of each edge
    and each node's two most important edges, where α's derivation keeps the heaviest ones."""
    from hwnas.strategies.cell_selection import select_genotype
    from hwnas.supernet.cell_supernet import CellWeights

    ops, nodes = ("none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"), 2
    edges = len(edge_inputs(nodes))
    g = torch.Generator().manual_seed(0)
    importance = {t: torch.rand(edges, len(ops), generator=g) for t in ("normal", "reduce")}
    alpha = {t: torch.rand(edges, len(ops), generator=g) for t in ("normal", "reduce")}
    weights = CellWeights({t: F.softmax(a, -1) for t, a in alpha.items()}, {"normal": None, "reduce": None})
    tuned = []

    def score(w):
        return (sum(float((importance[t] * w.ops[t]).sum()) for t in w.ops), 0.0)

    genotype = select_genotype(weights, ops, nodes, score, lambda w: tuned.append(w), seed=0)
    assert len(tuned) == 2 * edges  # tuned after every decision
    for t in ("normal", "reduce"):
        best = importance[t][:, 1:].argmax(1) + 1  # `none` is never kept
        chosen = {state: op for op, state in genotype.edges(t)[:2]}  # node 0 reads both states: both kept
        assert chosen == {0: ops[int(best[0])], 1: ops[int(best[1])]}
        for node in range(nodes):
            into = [e for e, (n, _) in enumerate(edge_inputs(nodes)) if n == node]
            weight = {e: float(importance[t][e, best[e]]) for e in into}
            kept = sorted(sorted(into, key=lambda e: -weight[e])[:2])
            assert [s for _, s in genotype.edges(t)[2 * node : 2 * node + 2]] == [
                edge_inputs(nodes)[e][1] for e in kept
            ]
    assert genotype != derive_genotype({t: w for t, w in weights.ops.items()}, ops, nodes)


@pytest.mark.slow
def test_a_uniform_supernet_searched_by_perturbation(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    argv = ["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1", "--mode", "uniform"]
    assert main([*argv, "--run-dir", str(tmp_path / "refused")]) == 2
    assert "--select perturbation" in capsys.readouterr().err
    assert main([*argv, "--select", "perturbation", "--run-dir", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out)
    arch = Architecture.load(tmp_path / "run" / "arch.json")
    assert summary["alpha_health"] is None and arch.meta["select"] == "perturbation"
    assert all(op != "none" for op, _ in arch.genotype.normal + arch.genotype.reduce)
    assert build_model(arch)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_rsps_draws_valid_genotypes_runs_each_alone_and_keeps_the_best_scored():
    import random

    from hwnas.spaces import Genotype
    from hwnas.spaces.genotype import random_genotype
    from hwnas.strategies.cell_selection import best_sampled, genotype_mixture
    from hwnas.supernet.cell_supernet import CellWeights

    nodes = 3
    rng = random.Random(0)
    drawn = [random_genotype(OPS, nodes, rng) for _ in range(20)]
    assert len({g.describe() for g in drawn}) == 20
    like = CellArchParams(load_space("darts", **{**TINY, "nodes": nodes})).mean_weights()
    for g in drawn:
        assert Genotype.from_dict(g.to_dict(), OPS) == g and g.count("none") == 0
        mixture = genotype_mixture(g, OPS, nodes, like).ops["normal"]
        assert mixture.sum() == 2 * nodes and set(mixture.flatten().tolist()) == {0.0, 1.0}
        runs = [(OPS[int(mixture[edge_index(i // 2, s)].argmax())], s) for i, (_, s) in enumerate(g.normal)]
        assert runs == list(g.normal)

    def score(weights: CellWeights) -> tuple[float, float]:  # more sep_conv_3x3 scores better
        return float(weights.ops["normal"][:, OPS.index("sep_conv_3x3")].sum()), 0.0

    best = best_sampled(drawn, OPS, nodes, like, score)
    assert best.count("sep_conv_3x3") == max(g.count("sep_conv_3x3") for g in drawn)


@pytest.mark.slow
def test_rsps_search_trains_random_genotypes_and_picks_a_sampled_one(tmp_path, capsys):
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    argv = ["search", "darts", "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1", "--mode", "random"]
    assert main([*argv, "--select", "sampled", "--sampled-genotypes", "6", "--run-dir", str(tmp_path / "r")]) == 0
    summary = json.loads(capsys.readouterr().out)
    arch = Architecture.load(tmp_path / "r" / "arch.json")
    assert summary["alpha_health"] is None and arch.meta["select"] == "sampled" and arch.meta["mode"] == "random"
    epochs = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert not any("genotype" in record for record in epochs)  # no per-epoch genotype of an α that never trains
    assert build_model(arch)(torch.randn(2, 3, 8, 8)).shape == (2, 10)


SHARED_SPACE = """name: shared
kind: cell
source: a space of one cell type, as NAS-Bench-201
knobs: {input_size: [3, 8, 8], num_classes: 10, init_channels: 4, layers: 3, nodes: 2, shared_cells: true,
        ops: [none, skip_connect, conv_k1, conv_k3, avg_pool_3x3]}
"""


def test_a_space_of_one_cell_type_shares_alpha_and_draws_and_accepts_only_equal_cells(tmp_path):
    import random

    from hwnas.cost.build import random_architecture
    from hwnas.errors import ArchError
    from hwnas.spaces.genotype import random_genotype

    (tmp_path / "shared.yaml").write_text(SHARED_SPACE)
    space = load_space(str(tmp_path / "shared.yaml"))
    arch = CellArchParams(space, edge_norm=True)
    assert arch.alpha["normal"] is arch.alpha["reduce"] and arch.beta["normal"] is arch.beta["reduce"]
    assert len(list(arch.parameters())) == 2  # one α and one β, trained once
    genotype = derive_genotype(arch.strengths(), space.ops, space.nodes, max_skip=0, shared=True)
    assert genotype.normal == genotype.reduce and genotype.count("skip_connect") == 0
    drawn = random_genotype(space.ops, space.nodes, random.Random(0), sparse=True, shared=True)
    assert drawn.normal == drawn.reduce
    Architecture.from_genotype(space, drawn)
    other = random_genotype(space.ops, space.nodes, random.Random(3))
    assert other.normal != other.reduce
    with pytest.raises(ArchError, match="shared_cells"):
        Architecture.from_genotype(space, other)
    model = build_model(Architecture.from_genotype(space, drawn))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    priced = random_architecture(space, random.Random(0)).genotype  # what latency tables are fitted and checked on
    assert priced.normal == priced.reduce


@pytest.mark.slow
@pytest.mark.parametrize("select", ["alpha", "perturbation"])
def test_a_search_of_a_one_cell_space_returns_one_cell_type(tmp_path, capsys, select):
    (tmp_path / "shared.yaml").write_text(SHARED_SPACE)
    data = write_cifar(tmp_path / "cifar", per_batch=16)
    argv = ["search", str(tmp_path / "shared.yaml"), "--data", f"cifar10:{data}", *SEARCH, "--epochs", "1"]
    assert main([*argv, "--select", select, "--arch-lr", "0.05", "--run-dir", str(tmp_path / "run")]) == 0
    genotype = Architecture.load(tmp_path / "run" / "arch.json").genotype
    assert genotype.normal == genotype.reduce


def test_a_one_hot_mixture_runs_only_its_ops_and_computes_the_same():
    """RSPS's genotypes and DARTS-PT's decided edges cost a single path: ops weighing exactly 0 do not run."""
    import random

    from hwnas.spaces.genotype import random_genotype
    from hwnas.strategies.cell_selection import genotype_mixture

    space = load_space("darts", **TINY)
    network, arch = CellSupernet(space).eval(), CellArchParams(space)
    genotype = random_genotype(space.ops, space.nodes, random.Random(0))
    weights = genotype_mixture(genotype, space.ops, space.nodes, arch.mean_weights())
    ran = []
    for cell in network.cells:
        for edge in cell.edges:
            for op in edge.ops:
                op.register_forward_hook(lambda module, args, out: ran.append(module))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        single = network(x, weights)
        assert len(ran) == 2 * space.nodes * len(space.cells)  # two ops a node, in every cell
        ran.clear()
        every = network(x, type(weights)({t: w.requires_grad_() for t, w in weights.ops.items()}, weights.edges))
        assert len(ran) == sum(len(edge.ops) - 1 for cell in network.cells for edge in cell.edges)  # all but none
    torch.testing.assert_close(single, every)
