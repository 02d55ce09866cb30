"""`search`: DNAS over a space on a dataset, priced by a cost table, ending in an architecture file."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture
from ..cost.hardware_loss import HardwareLoss
from ..cost.latency import measure_latency
from ..data import EpochLoader, search_split
from ..errors import HwnasError
from ..io import json_text
from ..model import build_model
from ..report.plots import theta_heatmap
from ..spaces import load_layerwise_space
from ..supernet import Supernet, extract_model
from ..train.distributed import Dist, barrier, init_distributed, shutdown
from ..train.rundir import RunDir
from ..train.session import (
    check_identities,
    open_run,
    open_run_data,
    reopen_config,
    space_overrides,
    start_or_resume,
    tell,
)
from ..train.trainer import evaluate_model
from .budget import most_probable_within
from .config import SearchConfig, SupernetConfig
from .constraints import FLAGS, constraints_for, cost_models, cost_table
from .dnas import DNASTrainer
from .evaluate import recalibrate_bn
from .health import healthy_top1, theta_health
from .oneshot import OneShotTrainer
from .trained import check_supernet, read_supernet


@dataclass
class SearchOutcome:
    run_dir: Path
    arch_path: Path | None
    summary: dict[str, Any]
    main_process: bool = True


def rank_zero_first(ctx: Dist, make: Callable[[], Any]) -> Any:
    """`make()` on rank 0, then on the others (e.g. rank 0 measures a cost table, the others read its cache)."""
    made = None
    for first in (True, False):
        if ctx.main == first:
            made = make()
        barrier(ctx)
    return made


def finish_search(run: RunDir, ctx: Dist, summarize: Callable[[], dict[str, Any]]) -> SearchOutcome:
    """On rank 0, `summarize()` (which writes arch.json) and result.json; then every rank closes the run."""
    summary: dict[str, Any] = {}
    arch_path = None
    if ctx.main:
        summary = summarize()
        arch_path = run.path / "arch.json"
        run.write_text("result.json", json_text(summary, indent=1))
    run.close()
    barrier(ctx)
    return SearchOutcome(run.path, arch_path, summary, ctx.main)


RUN_KINDS = {
    "search": "a `hwnas search` run",
    "supernet": "a `hwnas supernet train` run",
    "darts": "a `hwnas search` run of a cell space (DARTS, CNAS)",
}


def run_kind(config: dict[str, Any]) -> str:
    """What wrote a run's config.yaml: search, supernet, darts or train (by the options it holds)."""
    if "strategy" in config:
        return "search"
    if "sampling" in config:
        return "supernet"
    if "num_meta_node" in config:
        return "darts"
    return "train"


def check_resume_kind(resume: str, run_path: Path, kind: str) -> None:
    """Refuse to resume a run another command wrote (a train run as a search, ...), before any work."""
    found = run_kind(RunDir(run_path).read_config())
    if found != kind:
        raise HwnasError(
            f"--resume {resume}: {run_path} is a `hwnas {'search' if found == 'darts' else found}` run, "
            f"expected {RUN_KINDS[kind]}"
        )


def check_fresh_run_dir(cfg: Any, resuming: bool) -> None:
    """Refuse a fresh run into a --run-dir that already holds one, before anything is measured or written."""
    if resuming or not cfg.run_dir:
        return
    checkpoints = Path(cfg.run_dir) / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise HwnasError(f"--run-dir {cfg.run_dir} already holds a run; continue it with --resume {cfg.run_dir}")


def train_supernet(cfg: SupernetConfig, resume: str | None = None, explicit: set[str] | None = None) -> SearchOutcome:
    """Train a single-path one-shot supernet of `cfg.space` (uniform or fair sampling); writes supernet.pt."""
    checkpoint_name = None
    if resume is not None:
        cfg, run_path, checkpoint_name = reopen_config(resume, cfg, explicit, "config.yaml")
        check_resume_kind(resume, run_path, "supernet")
    check_fresh_run_dir(cfg, resume is not None)
    space = load_layerwise_space(cfg.space, "supernet train")
    if cfg.sampling == "fair" and any(getattr(cfg, f"max_{m}") is not None for m in FLAGS):
        raise HwnasError(
            "--sampling fair uses every candidate once per step and cannot honour a budget; "
            "use --sampling uniform with --max-macs/--max-params/--max-latency"
        )
    ctx, device = init_distributed(cfg.device)
    run: RunDir | None = None
    try:
        data = open_run_data(cfg, space.input_size, choosing=True)
        check_identities(cfg, data.train, data.classes)
        space = space.with_knobs(
            input_size=data.shape, num_classes=len(data.classes), **space_overrides(cfg, False, space.name)
        )
        constraints = constraints_for(space, cfg, progress=cfg.progress and ctx.main)
        run = open_run("supernet", space.name, cfg, ctx, resume is not None)
        torch.manual_seed(cfg.seed)
        supernet = Supernet(space)
        trainer = OneShotTrainer(
            supernet,
            cfg,
            train_set=data.train,
            val_set=data.val,
            preprocess=data.preprocess,
            device=device,
            constraints=constraints,
            run=run,
            ctx=ctx,
            meta={"config": cfg.to_dict(), "space_fingerprint": space.fingerprint()},
        )
        start_or_resume(trainer, run, cfg, ctx, resume, checkpoint_name, {})
        trainer.fit()
        summary = {"best": trainer.best, "trained_per_candidate": trainer.trained}
        if ctx.main:
            trainer.save_supernet(
                run.path / "supernet.pt", {"space_fingerprint": space.fingerprint(), "config": cfg.to_dict()}
            )
            run.write_text("result.json", json_text(summary, indent=1))
            tell(
                ctx,
                f"supernet weights in {run.path / 'supernet.pt'}; search it with:\n  hwnas search {cfg.space} "
                f"--strategy evolution --supernet {run.path}",
            )
        run.close()
        barrier(ctx)
        return SearchOutcome(run.path, None, summary, ctx.main)
    finally:
        if run is not None:
            run.close()  # releases the run directory's lock, also after an error
        shutdown(ctx)


def search(cfg: SearchConfig, resume: str | None = None, explicit: set[str] | None = None) -> SearchOutcome:
    """Search `cfg.space` with DNAS (or continue the run `resume`); write arch.json and a report."""
    checkpoint_name = None
    if resume is not None:
        cfg, run_path, checkpoint_name = reopen_config(resume, cfg, explicit, "config.yaml")
        check_resume_kind(resume, run_path, "search")
    if cfg.strategy != "dnas":
        from .evolution import search_supernet

        return search_supernet(cfg, resuming=resume is not None)
    if cfg.sample and cfg.mode in SOFT_MODES:
        raise HwnasError(
            f"--sample {cfg.sample} scores architectures with the supernet's weights, which only means something "
            f"after --mode gumbel_hard (--mode {cfg.mode} trains a mixture of candidates); use --mode gumbel_hard"
        )
    space = load_layerwise_space(cfg.space, "search")
    check_fresh_run_dir(cfg, resume is not None)
    ctx, device = init_distributed(cfg.device)
    run: RunDir | None = None
    try:
        torch.manual_seed(cfg.seed)
        data = open_run_data(cfg, space.input_size)
        check_identities(cfg, data.train, data.classes)
        space = space.with_knobs(
            input_size=data.shape, num_classes=len(data.classes), **space_overrides(cfg, False, space.name)
        )
        trained = None
        if cfg.supernet is not None:
            trained = read_supernet(cfg.supernet)
            check_supernet(trained, space, cfg.supernet, cfg.space, cfg.data)
        weight_set, theta_set = search_split(data.train, cfg.train_portion, cfg.seed)
        table = rank_zero_first(
            ctx, lambda: cost_table(space, cfg, cfg.cost == "latency", progress=cfg.progress and ctx.main)
        )
        costs = cost_models(table, space, device)
        loss = HardwareLoss.from_config(cfg, costs[cfg.cost])
        loss.check(costs[cfg.cost], [layer.candidates for layer in space.layers])
        run = open_run("search", space.name, cfg, ctx, resume is not None)
        torch.manual_seed(cfg.seed)  # the same initial weights whether or not the table was measured just now
        supernet = Supernet(space)
        if trained is not None:
            supernet.load_state_dict(trained["model"])
        trainer = DNASTrainer(
            supernet,
            cfg,
            weight_set=weight_set,
            theta_set=theta_set,
            val_set=data.val,
            preprocess=data.preprocess,
            device=device,
            costs=costs,
            hardware_loss=loss,
            run=run,
            ctx=ctx,
            meta={"config": cfg.to_dict()},
        )
        start_or_resume(trainer, run, cfg, ctx, resume, checkpoint_name, {})
        trainer.fit()
        return finish_search(
            run,
            ctx,
            lambda: _result(trainer, space, table, theta_set, data.preprocess, device, cfg, run.path),
        )
    finally:
        if run is not None:
            run.close()  # releases the run directory's lock, also after an error
        shutdown(ctx)


SOFT_MODES = ("gumbel", "softmax")


EXPECTED_COST_SHARE = 0.85  # under a target, the derived network costs at least this share of θ's expected cost


def derive(trainer: DNASTrainer, cfg: SearchConfig) -> tuple[list[str], str]:
    """The argmax of θ; under a target, the most probable architecture within it that costs at least 85% of
    θ's expected cost (hwnas.search.budget)."""
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
    trainer: DNASTrainer, space, table, theta_set, preprocess, device, cfg: SearchConfig, run_path: Path
) -> dict[str, Any]:
    """Pick the architecture, evaluate it with inherited weights, measure it, write arch.json and the plots."""
    single = Dist()
    health = theta_health(
        [torch.zeros_like(t) for t in trainer.theta.logits], list(trainer.theta.logits), trainer.theta_updates
    )
    if not health["healthy"]:
        tell(single, f"warning: {health['message']}")
    derived, how = derive(trainer, cfg)
    candidates = [derived]
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.sample * 20):  # draws from softmax(θ) within the target, until N distinct ones
        if len(candidates) > cfg.sample:
            break
        drawn = trainer.theta.sample(generator)
        if drawn not in candidates and (cfg.target is None or cost_of(trainer, space, drawn, cfg.cost) <= cfg.target):
            candidates.append(drawn)
    accuracy, choices = None, derived
    if cfg.mode not in SOFT_MODES:  # a soft search trains a mixture: its single paths mean little before retraining
        score_loader = EpochLoader(theta_set, cfg.batch_size, train=False)
        calib_loader = EpochLoader(trainer.train_loader.dataset, cfg.batch_size, train=True, seed=cfg.seed + 2)
        scored = []
        for path in candidates:
            model = extract_model(trainer.supernet, path).to(device)
            recalibrate_bn(model, calib_loader, preprocess, device, cfg.recalibrate_batches)
            scored.append((evaluate_model(model, score_loader, preprocess, device, ctx=single)["val_top1"], path))
            tell(
                single,
                f"  candidate {len(scored)}/{len(candidates)}: top-1 {scored[-1][0]:.2f}% on the θ split "
                f"(inherited weights)",
            )
        accuracy, choices = max(scored, key=lambda s: s[0])
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
            tell(single, f"warning: {health['message']}")
    expected = {m: cost_of(trainer, space, choices, m) for m in trainer.costs}
    model = build_model(Architecture.from_space(space, choices))
    measured = measure_latency(
        model,
        space.input_size,
        device=cfg.latency_device,
        batch=cfg.latency_batch,
        threads=cfg.latency_threads,
        min_run_time=0.5,
    )
    predicted_ms = table.predict(space, choices) if "latency" in trainer.costs else None
    meta = {
        "strategy": "dnas",
        "mode": cfg.mode,
        "run": str(run_path),
        "picked": how if len(candidates) == 1 else f"best on the θ split of the {how} and {len(candidates) - 1} draws",
        "val_top1_inherited": accuracy,
        "expected": {"latency_ms": expected.get("latency"), "macs_m": expected["macs"], "params_m": expected["params"]},
        "measured_latency_ms": measured.median_ms,
        "latency_device": cfg.latency_device,
        "latency_threads": cfg.latency_threads,
    }
    if cfg.supernet is not None:
        meta["supernet"] = cfg.supernet  # the weights started from a trained one-shot supernet
    arch = Architecture.from_space(space, choices, meta)
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
        "measured_latency_ms": measured.median_ms,
        "latency_error_pct": None if predicted_ms is None else 100 * (predicted_ms / measured.median_ms - 1),
        "macs": round(expected["macs"] * 1e6),
        "params": round(expected["params"] * 1e6),
        "theta_png": str(run_path / "theta.png"),
        "retrain": retrain,
        "theta_health": health,
    }
    if cfg.target is not None:
        summary["target"] = {"value": cfg.target, "metric": cfg.cost, "use": expected[cfg.cost] / cfg.target}
    tell(single, f"architecture: {' '.join(choices)}")
    identity = sum(op in ("skip", "zero") for op in choices)
    summary["identity_layers"] = identity
    if identity * 2 >= len(choices):
        tell(
            single,
            f"warning: {identity} of {len(choices)} layers chose skip/zero. Under a tight cost target that "
            f"is the price; without one it is the skip collapse of differentiable search. Look at theta.png",
        )
    inherited = (
        "inherited-weight accuracy not shown (a soft search trains a mixture; retrain the architecture)"
        if accuracy is None
        else f"top-1 with supernet weights {accuracy:.2f}% on the θ split"
    )
    tell(
        single,
        f"{inherited} | latency predicted "
        f"{'(not measured)' if predicted_ms is None else f'{predicted_ms:.3f} ms'}, measured "
        f"{measured.median_ms:.3f} ms on {cfg.latency_device} ({cfg.latency_threads} thread(s)) | "
        f"{summary['macs'] / 1e6:.2f}M MACs | {summary['params'] / 1e6:.3f}M params",
    )
    tell(single, f"wrote {arch_path} and {run_path / 'theta.png'}; retrain with:\n  {retrain}")
    return summary
