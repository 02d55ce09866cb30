"""`search_cells`: DARTS/CNAS search of a cell space on a dataset, ending in a genotype architecture file.

Every epoch (rank 0): `arch.json` (the derived genotype in the evaluation network's knobs),
`genotypes/epoch_NNN.json`, `alpha.png` (α per cell type, edges × ops) and `cells/normal.*`,
`cells/reduce.*` (DOT, plus SVG/PNG from Graphviz or a matplotlib drawing).
At the end: the evaluation network built, profiled and timed on the latency device.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture
from ..cost import measure_latency, profile_arch
from ..cost.cells import CellCostModel
from ..cost.hardware_loss import HardwareLoss
from ..data import search_split
from ..errors import SpaceError
from ..model import build_model
from ..report.cells import alpha_heatmap, draw_genotype
from ..spaces import CellSpaceSpec, Genotype, load_space
from ..supernet.cells import CellSupernet
from ..train.distributed import init_distributed, rank_zero, shutdown
from ..train.session import open_run, open_run_data, reopen_config, start_or_resume
from ..train.storage import writing
from .config import DartsConfig
from .constraints import cost_table
from .darts import DartsTrainer
from .session import SearchOutcome, check_fresh_run_dir, check_resume_kind, finish_search, rank_zero_first


def load_cell_space(name: str) -> CellSpaceSpec:
    space = load_space(name)
    if space.kind != "cell":
        raise SpaceError(f"space {space.name} is layer-wise; cell search (DARTS) needs a space of kind: cell")
    return space  # type: ignore[return-value]


def _ops_knob(ops: str | None) -> dict[str, Any]:
    if ops is None:
        return {}
    names = [op.strip() for op in ops.split(",") if op.strip()]
    return {"ops": names[0] if len(names) == 1 else names}


def write_epoch_files(
    run_path: Path, eval_space: CellSpaceSpec, genotype: Genotype, strengths: dict[str, Any], meta: dict[str, Any]
) -> Architecture:
    """arch.json, genotypes/epoch_NNN.json, alpha.png and the cell drawings of one epoch."""
    arch = Architecture.from_genotype(eval_space, genotype, meta)
    arch.save(run_path / "arch.json")
    arch.save(run_path / "genotypes" / f"epoch_{meta['epoch']:03d}.json")
    alpha_heatmap(
        strengths,
        eval_space.ops,
        eval_space.nodes,
        run_path / "alpha.png",
        f"{eval_space.name}: architecture weights after epoch {meta['epoch']}",
    )
    draw_genotype(genotype.to_dict(), run_path / "cells")
    return arch


def search_cells(cfg: DartsConfig, resume: str | None = None, explicit: set[str] | None = None) -> SearchOutcome:
    """Search `cfg.space` with DARTS (or continue the run `resume`); write arch.json, plots and a summary."""
    checkpoint_name = None
    if resume is not None:
        cfg, run_path, checkpoint_name = reopen_config(resume, cfg, explicit, "config.yaml")
        check_resume_kind(resume, run_path, "darts")
    check_fresh_run_dir(cfg, resume is not None)
    base = load_cell_space(cfg.space)
    ctx, device = init_distributed(cfg.device)
    run = None
    try:
        torch.manual_seed(cfg.seed)
        data = open_run_data(cfg, base.input_size)
        knobs = {"input_size": data.shape, "num_classes": len(data.classes), "nodes": cfg.num_meta_node}
        knobs.update(_ops_knob(cfg.ops))
        space = base.with_knobs(**knobs, init_channels=cfg.init_channels, layers=cfg.layers)
        eval_space = base.with_knobs(**knobs, init_channels=cfg.eval_init_channels, layers=cfg.eval_layers)
        weight_set, arch_set = search_split(data.train, cfg.train_portion, cfg.seed)
        cost, hardware_loss = None, None
        if cfg.cost is not None:
            table = rank_zero_first(
                ctx, lambda: cost_table(eval_space, cfg, cfg.cost == "latency", progress=cfg.progress and ctx.main)
            )
            cost = CellCostModel.from_table(table, eval_space, cfg.cost, sparse=cfg.use_sparse, device=device)
            hardware_loss = HardwareLoss("add", weight=cfg.hc_weight, target=cfg.target, target_mode=cfg.target_mode)
            cheapest, cheapest_cells = cost.cheapest()
            hardware_loss.check_against(cheapest, cost.unit, cheapest_cells)
        run = open_run("search", space.name, cfg, ctx, resume is not None)
        torch.manual_seed(cfg.seed)  # the same initial weights and α whether or not a table was measured
        supernet = CellSupernet(space, cfg.partial_channels)

        def on_genotype(epoch: int, genotype: Genotype, record: dict[str, Any]) -> None:
            meta = {
                "strategy": "darts",
                "run": str(run.path),
                "epoch": epoch + 1,
                "val_top1_supernet": record["val_top1"],
            }

            def write() -> None:
                with writing(run.path, run.hint()):
                    write_epoch_files(run.path, eval_space, genotype, record["alpha"], meta)

            rank_zero(ctx, write)

        trainer = DartsTrainer(
            supernet,
            cfg,
            weight_set=weight_set,
            arch_set=arch_set,
            val_set=data.val,
            preprocess=data.preprocess,
            device=device,
            cost=cost,
            hardware_loss=hardware_loss,
            run=run,
            ctx=ctx,
            meta={"config": cfg.to_dict()},
            on_genotype=on_genotype,
        )
        start_or_resume(trainer, run, cfg, ctx, resume, checkpoint_name, {})
        trainer.fit()
        return finish_search(run, ctx, lambda: _result(trainer, eval_space, cost, cfg, run.path))
    finally:
        if run is not None:
            run.close()
        shutdown(ctx)


def _result(
    trainer: DartsTrainer, eval_space: CellSpaceSpec, cost: CellCostModel | None, cfg: DartsConfig, run_path: Path
) -> dict[str, Any]:
    """The final genotype as arch.json, the evaluation network's counts and measured latency, the summary."""
    genotype = trainer.genotype()
    meta: dict[str, Any] = {
        "strategy": "darts",
        "run": str(run_path),
        "epoch": trainer.epoch,
        "order": "second" if cfg.sec_approx else "first",
        "sparse": cfg.use_sparse,
        "val_top1_supernet": trainer.history[-1]["val_top1"] if trainer.history else None,
    }
    derived = Architecture.from_genotype(eval_space, genotype)
    model = build_model(derived)
    profile = profile_arch(derived, model)
    measured = measure_latency(
        model,
        eval_space.input_size,
        device=cfg.latency_device,
        batch=cfg.latency_batch,
        threads=cfg.latency_threads,
        min_run_time=0.5,
    )
    meta.update({"params": profile.params, "macs": profile.macs, "measured_latency_ms": measured.median_ms})
    predicted = cost.of(genotype) if cost is not None else None
    if cost is not None:
        meta[f"predicted_{cost.metric}"] = predicted
    strengths = {t: p.tolist() for t, p in trainer.arch.strengths().items()}
    arch = write_epoch_files(run_path, eval_space, genotype, strengths, meta)
    shape = "x".join(map(str, eval_space.input_size))
    try:
        eval_space.with_knobs(auxiliary=True)
        auxiliary = " --auxiliary"
    except SpaceError:  # the input is too small for the auxiliary head
        auxiliary = ""
    retrain = (
        f"hwnas train {shlex.quote(str(run_path / 'arch.json'))} --data {shlex.quote(cfg.data)} --input {shape} "
        f"--epochs 600 --batch-size 96 --lr 0.025 --weight-decay 3e-4 --grad-clip 5 --cutout{auxiliary} "
        f"--drop-path-prob 0.2"
    )
    summary = {
        "arch": str(run_path / "arch.json"),
        "genotype": arch.genotype.to_dict() if arch.genotype else None,
        "skip_normal": genotype.count("skip_connect", "normal"),
        "val_top1_supernet": meta["val_top1_supernet"],
        "params": profile.params,
        "macs": profile.macs,
        "measured_latency_ms": measured.median_ms,
        "latency_device": cfg.latency_device,
        "cost_metric": cost.metric if cost is not None else None,
        "predicted_cost": predicted,
        "eval_network": {"init_channels": cfg.eval_init_channels, "layers": cfg.eval_layers, "input": shape},
        "alpha_png": str(run_path / "alpha.png"),
        "cells": str(run_path / "cells"),
        "retrain": retrain,
    }
    print(f"genotype: {genotype.describe()}", file=sys.stderr)
    print(
        f"evaluation network (C{cfg.eval_init_channels}, {cfg.eval_layers} cells, {shape}): "
        f"{profile.params / 1e6:.3f}M params, {profile.macs / 1e6:.1f}M MACs, "
        f"{measured.median_ms:.3f} ms on {cfg.latency_device} ({cfg.latency_threads} thread(s))"
        + (f"; predicted {cost.metric} {predicted:.4g} {cost.unit}" if cost is not None else ""),
        file=sys.stderr,
    )
    print(f"wrote {run_path / 'arch.json'}, alpha.png and cells/; retrain with:\n  {retrain}", file=sys.stderr)
    return summary
