"""DNAS (FBNet) search of a layer-wise space: w and θ trained in turns, priced by a cost table, ending in
an architecture file, θ's heat map and the network measured on the latency device."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture
from ..cost.hardware_loss import HardwareLoss
from ..data import EpochLoader, search_split
from ..engine.distributed import Dist
from ..engine.trainer import evaluate_model
from ..errors import HwnasError
from ..log import warn_user
from ..model import build_model
from ..pipeline import Outcome, Run, tell
from ..pretrained_cfg import PretrainedCfg
from ..report.plots import theta_heatmap
from ..spaces import load_layerwise_space
from ..supernet import Supernet, recompute
from ..supernet.memory import recompute_default
from ..supernet.mixing import Mixing
from .architect import check_warmup
from .config import DnasConfig
from .constraints import cost_models
from .dnas import DNASTrainer
from .evaluate import latency_on_target, path_network
from .health import healthy_top1, theta_health
from .knapsack import most_probable_within
from .registry import register_strategy
from .trained import check_supernet, read_supernet


@register_strategy(
    "dnas",
    options=DnasConfig,
    trains="a Gumbel-softmax supernet and θ in turns",
    picks="θ's most probable architecture",
)
def search_dnas(run: Run) -> Outcome:
    """Search `cfg.space` with DNAS (from scratch, or from a trained one-shot supernet's weights)."""
    cfg: DnasConfig = run.cfg
    check_warmup(cfg)
    if cfg.sample and Mixing.parse(cfg.mode).soft:
        raise HwnasError(
            f"--sample {cfg.sample} scores architectures with the supernet's weights, which only means something "
            f"after --mode gumbel_hard (--mode {cfg.mode} trains a mixture of candidates); use --mode gumbel_hard"
        )
    space = load_layerwise_space(cfg.space, "search")
    data = run.open_data(space.input_size)
    space = run.fit(space, data)
    trained = None
    if cfg.supernet is not None:
        trained = read_supernet(cfg.supernet)
        check_supernet(trained, space, cfg.supernet, cfg.space, cfg.data)
    weight_set, theta_set = search_split(data.train, cfg.train_portion, cfg.seed)
    table = run.cost_table(space, cfg.cost == "latency")
    costs = cost_models(table, space, run.device)
    loss = HardwareLoss.from_config(cfg, costs[cfg.cost])
    loss.check(costs[cfg.cost], [layer.candidates for layer in space.layers])
    directory = run.open_dir(space.name)
    torch.manual_seed(cfg.seed)  # the same initial weights whether or not the table was measured just now
    supernet = Supernet(space)
    if trained is not None:
        supernet.load_state_dict(trained["model"])
    options = run.trainer_options(data, {"config": cfg.to_dict()}, val_set=theta_set)  # never the test pool
    trainer = DNASTrainer(
        supernet, cfg, weight_set=weight_set, theta_set=theta_set, costs=costs, hardware_loss=loss, **options
    )
    run.start(trainer)
    with recompute(recompute_default(cfg.recompute, trainer, lambda x: trainer.model(x, trainer.path(grad=False)))):
        trainer.fit()
    return run.finish(
        lambda: _result(
            trainer, space, table, theta_set, data.preprocess, run.device, cfg, directory.path, data.pretrained_cfg
        )
    )


EXPECTED_COST_SHARE = 0.85  # under a target, the derived network costs at least this share of θ's expected cost


def derive(trainer: DNASTrainer, cfg: DnasConfig) -> tuple[list[str], str]:
    """The argmax of θ; under a target, the most probable architecture within it that costs at least 85% of
    θ's expected cost (hwnas.strategies.knapsack)."""
    if cfg.target is None:
        return trainer.theta.argmax(), "argmax of θ"
    model = trainer.costs[cfg.cost]
    probs = trainer.theta.probs()
    log_probs = [p.detach().clamp_min(1e-30).log().cpu().tolist() for p in probs]
    floor = EXPECTED_COST_SHARE * min(cfg.target, float(model.expected(probs).detach()))
    rows = [r.cpu().tolist() for r in model.rows]
    picks = most_probable_within(log_probs, rows, model.fixed, cfg.target, floor=floor)
    if picks is None:  # the loss's check refused such targets before the search began
        raise HwnasError(f"--target {cfg.target:g} {model.unit}: no architecture meets it")
    how = f"most probable architecture within --target {cfg.target:g} {model.unit}"
    return [ops[i] for ops, i in zip(trainer.theta.ops, picks, strict=True)], how


def cost_of(trainer: DNASTrainer, space, choices: list[str], metric: str) -> float:
    return trainer.costs[metric].of([la.candidates.index(op) for la, op in zip(space.layers, choices, strict=True)])


def _result(
    trainer: DNASTrainer,
    space,
    table,
    theta_set,
    preprocess,
    device,
    cfg: DnasConfig,
    run_path: Path,
    pretrained_cfg: PretrainedCfg,
) -> dict[str, Any]:
    """Pick the architecture, evaluate it with inherited weights, measure it, write arch.json and the plots."""
    health = theta_health(
        [torch.zeros_like(t) for t in trainer.theta.logits], list(trainer.theta.logits), trainer.theta_updates
    )
    if not health["healthy"]:
        warn_user(health["message"])
    derived, how = derive(trainer, cfg)
    candidates = _drawn(trainer, space, cfg, derived)
    accuracy, choices = None, derived
    if not trainer.mode.soft:  # a soft search trains a mixture: its single paths mean little before retraining
        accuracy, choices = _best_inherited(trainer, candidates, theta_set, preprocess, device, cfg)
        needed = healthy_top1(space.head.num_classes)
        if accuracy < needed:
            health = {
                **health,
                "healthy": False,
                "message": f"the supernet's paths score near chance ({accuracy:.2f}% top-1 with inherited weights, "
                f"healthy from {needed:.2f}%): its weights did not train, so θ followed only "
                f"the cost term and the result is not a searched architecture. A single-path supernet "
                f"(--mode gumbel_hard) needs many more epochs than one network (or --weight-warmup-epochs)",
            }
            warn_user(health["message"])
    expected = {m: cost_of(trainer, space, choices, m) for m in trainer.costs}
    model = build_model(Architecture.from_space(space, choices))
    measured = latency_on_target(model, space.input_size, cfg)
    predicted_ms = table.predict(space, choices) if "latency" in trainer.costs else None
    meta = {
        "strategy": "dnas",
        "mode": cfg.mode,
        "run": str(run_path),
        "picked": how if len(candidates) == 1 else f"best on the θ split of the {how} and {len(candidates) - 1} draws",
        "val_top1_inherited": accuracy,
        "expected": {"latency_ms": expected.get("latency"), "macs_m": expected["macs"], "params_m": expected["params"]},
        "measured_latency_ms": measured.min_ms,
        "latency_device": cfg.latency_device,
        "latency_threads": cfg.latency_threads,
    }
    if cfg.supernet is not None:
        meta["supernet"] = cfg.supernet  # the weights started from a trained one-shot supernet
    arch = Architecture.from_space(space, choices, meta, pretrained_cfg)
    arch_path = arch.save(run_path / "arch.json")
    probs = [p.detach().cpu().tolist() for p in trainer.theta.probs()]
    theta_heatmap(
        probs, trainer.theta.ops, run_path / "theta.png", f"softmax(θ) after {cfg.epochs} epochs, {space.name}"
    )
    retrain = (
        f"hwnas train {shlex.quote(str(arch_path))} --data {shlex.quote(cfg.data)} "
        f"--input {'x'.join(map(str, space.input_size))} --epochs {max(cfg.epochs, 10)}"
        + (f" --head {cfg.head}" if cfg.head != "softmax" else "")
    )
    summary = {
        "arch": str(arch_path),
        "choices": choices,
        "val_top1_inherited": accuracy,
        "predicted_latency_ms": predicted_ms,
        "measured_latency_ms": measured.min_ms,
        "latency_error_pct": None if predicted_ms is None else 100 * (predicted_ms / measured.min_ms - 1),
        "macs": round(expected["macs"] * 1e6),
        "params": round(expected["params"] * 1e6),
        "theta_png": str(run_path / "theta.png"),
        "retrain": retrain,
        "theta_health": health,
    }
    if cfg.target is not None:
        summary["target"] = {"value": cfg.target, "metric": cfg.cost, "use": expected[cfg.cost] / cfg.target}
    summary["identity_layers"] = sum(op in ("skip", "zero") for op in choices)
    _tell(summary, cfg, arch_path, run_path)
    return summary


def _drawn(trainer: DNASTrainer, space: Any, cfg: DnasConfig, derived: list[str]) -> list[str]:
    """The derived architecture and up to `--sample` distinct draws from softmax(θ) within the target."""
    candidates = [derived]
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.sample * 20):
        if len(candidates) > cfg.sample:
            break
        drawn = trainer.theta.sample(generator)
        if drawn not in candidates and (cfg.target is None or cost_of(trainer, space, drawn, cfg.cost) <= cfg.target):
            candidates.append(drawn)
    return candidates


def _best_inherited(
    trainer: DNASTrainer, candidates: list[Any], theta_set: Any, preprocess: Any, device: Any, cfg: DnasConfig
) -> tuple[float, Any]:
    """The candidate of the best top-1 on the θ split with the supernet's weights (BatchNorm re-estimated)."""
    single = Dist()
    score_loader = EpochLoader(theta_set, cfg.batch_size, train=False)
    calib_loader = EpochLoader(trainer.train_loader.dataset, cfg.batch_size, train=True, seed=cfg.seed + 2)
    scored = []
    for path in candidates:
        model = path_network(trainer.supernet, path, calib_loader, preprocess, device, cfg.recalibrate_batches)
        scored.append((evaluate_model(model, score_loader, preprocess, device, ctx=single)["val_top1"], path))
        tell(
            single,
            f"  candidate {len(scored)}/{len(candidates)}: top-1 {scored[-1][0]:.2f}% on the θ split "
            f"(inherited weights)",
        )
    return max(scored, key=lambda s: s[0])


def _tell(summary: dict[str, Any], cfg: DnasConfig, arch_path: Path, run_path: Path) -> None:
    """What the search found, in a few lines; a warning when half of the layers or more chose skip/zero."""
    single, choices, accuracy = Dist(), summary["choices"], summary["val_top1_inherited"]
    tell(single, f"architecture: {' '.join(choices)}")
    identity = summary["identity_layers"]
    if identity * 2 >= len(choices):
        warn_user(
            f"{identity} of {len(choices)} layers chose skip/zero. Under a tight cost target that is the price; "
            f"without one it is the skip collapse of differentiable search. Look at theta.png"
        )
    predicted_ms, measured_ms = summary["predicted_latency_ms"], summary["measured_latency_ms"]
    inherited = (
        "inherited-weight accuracy not shown (a soft search trains a mixture; retrain the architecture)"
        if accuracy is None
        else f"top-1 with supernet weights {accuracy:.2f}% on the θ split"
    )
    tell(
        single,
        f"{inherited} | latency predicted "
        f"{'(not measured)' if predicted_ms is None else f'{predicted_ms:.3f} ms'}, measured "
        f"{measured_ms:.3f} ms on {cfg.latency_device} ({cfg.latency_threads} thread(s)) | "
        f"{summary['macs'] / 1e6:.2f}M MACs | {summary['params'] / 1e6:.3f}M params",
    )
    tell(single, f"wrote {arch_path} and {run_path / 'theta.png'}; retrain with:\n  {summary['retrain']}")
