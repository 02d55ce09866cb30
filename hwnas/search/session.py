"""`search`: DNAS over a space on a dataset, priced by a cost table, ending in an architecture file."""

from __future__ import annotations

import json
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
from ..io import atomic_write
from ..model import build_model
from ..report.plots import theta_heatmap
from ..spaces import load_layerwise_space
from ..supernet import Supernet, extract_model
from ..train.distributed import Dist, barrier, init_distributed, shutdown
from ..train.rundir import RunDir
from ..train.session import (
    _say,
    check_identities,
    open_run,
    open_run_data,
    reopen_config,
    space_overrides,
    start_or_resume,
)
from ..train.trainer import evaluate_model
from .config import SearchConfig, SupernetConfig
from .constraints import FLAGS, constraints_for, cost_models, cost_table
from .dnas import DNASTrainer
from .evaluate import recalibrate_bn
from .oneshot import OneShotTrainer


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
        run.write_text("result.json", json.dumps(summary, indent=1))
    run.close()
    barrier(ctx)
    return SearchOutcome(run.path, arch_path, summary, ctx.main)


def train_supernet(cfg: SupernetConfig, resume: str | None = None, explicit: set[str] | None = None) -> SearchOutcome:
    """Train a single-path one-shot supernet of `cfg.space` (uniform or fair sampling); writes supernet.pt."""
    checkpoint_name = None
    if resume is not None:
        cfg, _, checkpoint_name = reopen_config(resume, cfg, explicit, "config.yaml")
    space = load_layerwise_space(cfg.space, "supernet train")
    if cfg.sampling == "fair" and any(getattr(cfg, f"max_{m}") is not None for m in FLAGS):
        raise HwnasError(
            "--sampling fair uses every candidate once per step and cannot honour a budget; "
            "use --sampling uniform with --max-macs/--max-params/--max-latency"
        )
    ctx, device = init_distributed(cfg.device)
    try:
        data = open_run_data(cfg, space.input_size)
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
            atomic_write(
                run.path / "supernet.pt",
                lambda f: torch.save(
                    {"model": supernet.state_dict(), "space_fingerprint": space.fingerprint(), "config": cfg.to_dict()},
                    f,
                ),
            )
            run.write_text("result.json", json.dumps(summary, indent=1))
            _say(
                ctx,
                f"supernet weights in {run.path / 'supernet.pt'}; search it with:\n  hwnas search {cfg.space} "
                f"--strategy evolution --supernet {run.path}",
            )
        run.close()
        barrier(ctx)
        return SearchOutcome(run.path, None, summary, ctx.main)
    finally:
        shutdown(ctx)


def search(cfg: SearchConfig, resume: str | None = None, explicit: set[str] | None = None) -> SearchOutcome:
    """Search `cfg.space` with DNAS (or continue the run `resume`); write arch.json and a report."""
    checkpoint_name = None
    if resume is not None:
        cfg, _, checkpoint_name = reopen_config(resume, cfg, explicit, "config.yaml")
    if cfg.strategy != "dnas":
        from .evolution import search_supernet

        return search_supernet(cfg, resuming=resume is not None)
    space = load_layerwise_space(cfg.space, "search")
    ctx, device = init_distributed(cfg.device)
    try:
        torch.manual_seed(cfg.seed)
        data = open_run_data(cfg, space.input_size)
        check_identities(cfg, data.train, data.classes)
        space = space.with_knobs(
            input_size=data.shape, num_classes=len(data.classes), **space_overrides(cfg, False, space.name)
        )
        weight_set, theta_set = search_split(data.train, cfg.train_portion, cfg.seed)
        table = rank_zero_first(
            ctx, lambda: cost_table(space, cfg, cfg.cost == "latency", progress=cfg.progress and ctx.main)
        )
        costs = cost_models(table, space, device)
        loss = HardwareLoss(cfg.hw_loss, cfg.alpha, cfg.beta, cfg.hc_weight, cfg.target, cfg.target_mode)
        loss.check(costs[cfg.cost], [layer.candidates for layer in space.layers])
        run = open_run("search", space.name, cfg, ctx, resume is not None)
        torch.manual_seed(cfg.seed)  # the same initial weights whether or not the table was measured just now
        supernet = Supernet(space)
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
            lambda: _result(trainer, space, table, weight_set, data.val, data.preprocess, device, cfg, run.path),
        )
    finally:
        shutdown(ctx)


def _result(
    trainer: DNASTrainer, space, table, weight_set, val, preprocess, device, cfg: SearchConfig, run_path: Path
) -> dict[str, Any]:
    """Pick the architecture, evaluate it with inherited weights, measure it, write arch.json and the plots."""
    single = Dist()
    val_loader = EpochLoader(val, cfg.batch_size, train=False)
    calib_loader = EpochLoader(weight_set, cfg.batch_size, train=True, seed=cfg.seed + 2)
    candidates = [trainer.theta.argmax()]
    generator = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.sample):
        drawn = trainer.theta.sample(generator)
        if drawn not in candidates:
            candidates.append(drawn)
    scored = []
    for choices in candidates:
        model = extract_model(trainer.supernet, choices).to(device)
        recalibrate_bn(model, calib_loader, preprocess, device, cfg.recalibrate_batches)
        scored.append((evaluate_model(model, val_loader, preprocess, device, ctx=single)["val_top1"], choices))
        _say(single, f"  candidate {len(scored)}/{len(candidates)}: val top-1 {scored[-1][0]:.2f}% (inherited weights)")
    accuracy, choices = max(scored, key=lambda s: s[0])
    expected = {
        m: trainer.costs[m].of([la.candidates.index(op) for la, op in zip(space.layers, choices, strict=True)])
        for m in trainer.costs
    }
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
        "picked": "argmax" if cfg.sample == 0 else f"best of argmax and {cfg.sample} samples",
        "val_top1_inherited": accuracy,
        "expected": {"latency_ms": expected.get("latency"), "macs_m": expected["macs"], "params_m": expected["params"]},
        "measured_latency_ms": measured.median_ms,
        "latency_device": cfg.latency_device,
        "latency_threads": cfg.latency_threads,
    }
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
    }
    _say(single, f"architecture: {' '.join(choices)}")
    identity = sum(op in ("skip", "zero") for op in choices)
    summary["identity_layers"] = identity
    if identity * 2 >= len(choices):
        _say(
            single,
            f"warning: {identity} of {len(choices)} layers chose skip/zero. Under a tight cost target that "
            f"is the price; without one it is the skip collapse of differentiable search. Look at theta.png",
        )
    _say(
        single,
        f"val top-1 with supernet weights {accuracy:.2f}% | latency predicted "
        f"{'(not measured)' if predicted_ms is None else f'{predicted_ms:.3f} ms'}, measured "
        f"{measured.median_ms:.3f} ms on {cfg.latency_device} ({cfg.latency_threads} thread(s)) | "
        f"{summary['macs'] / 1e6:.2f}M MACs | {summary['params'] / 1e6:.3f}M params",
    )
    _say(single, f"wrote {arch_path} and {run_path / 'theta.png'}; retrain with:\n  {retrain}")
    return summary
