"""DARTS/CNAS search of a cell space on a dataset, ending in a genotype architecture file.

Every epoch (rank 0): `arch.json` (the derived genotype in the evaluation network's knobs),
`genotypes/epoch_NNN.json`, `alpha.png` (α per cell type, edges × ops) and `cells/normal.*`,
`cells/reduce.*` (DOT, plus SVG/PNG from Graphviz or a matplotlib drawing).
At the end: the evaluation network built, profiled and timed on the latency device.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture
from ..cost import profile_arch
from ..cost.cell_cost import CellCostModel
from ..cost.hardware_loss import HardwareLoss
from ..data import search_split
from ..engine.distributed import rank_zero
from ..engine.storage import writing
from ..errors import HwnasError, SpaceError
from ..log import warn_user
from ..model import build_model
from ..pipeline import Outcome, Run
from ..pretrained_cfg import PretrainedCfg
from ..report.cell_plots import alpha_heatmap, draw_genotype
from ..spaces import CellSpaceSpec, Genotype, load_space
from ..supernet import recompute
from ..supernet.cell_supernet import FIXED_MODES, CellSupernet
from ..supernet.memory import recompute_default
from .architect import check_warmup
from .config import DartsConfig
from .darts import DartsTrainer
from .evaluate import latency_on_target
from .health import alpha_health
from .registry import register_strategy

logger = logging.getLogger(__name__)


def load_cell_space(name: str) -> CellSpaceSpec:
    space = load_space(name)
    if space.kind != "cell":
        raise SpaceError(f"space {space.name} is layer-wise; cell search (DARTS) needs a space of kind: cell")
    return space  # type: ignore[return-value]


def ops_knob(ops: str | None) -> dict[str, Any]:
    if ops is None:
        return {}
    names = [op.strip() for op in ops.split(",") if op.strip()]
    return {"ops": names[0] if len(names) == 1 else names}


def write_epoch_files(
    run_path: Path,
    eval_space: CellSpaceSpec,
    genotype: Genotype,
    strengths: dict[str, Any],
    meta: dict[str, Any],
    pretrained_cfg: PretrainedCfg,
    draw: bool = True,
) -> Architecture:
    """arch.json, genotypes/epoch_NNN.json, and unless `draw` is False alpha.png and the cell drawings, of one
    epoch."""
    arch = Architecture.from_genotype(eval_space, genotype, meta, pretrained_cfg)
    arch.save(run_path / "arch.json")
    arch.save(run_path / "genotypes" / f"epoch_{meta['epoch']:03d}.json")
    if not draw:
        return arch
    alpha_heatmap(
        strengths,
        eval_space.ops,
        eval_space.nodes,
        run_path / "alpha.png",
        f"{eval_space.name}: architecture weights after epoch {meta['epoch']}",
        genotype.to_dict(),
    )
    draw_genotype(genotype.to_dict(), run_path / "cells")
    return arch


def check_modes(cfg: DartsConfig) -> None:
    """Refuse, before any work, the combinations of --mode and --select that cannot work."""
    if cfg.mode == "dirichlet" and cfg.sec_approx:
        raise HwnasError(
            "--mode dirichlet draws a new mixture every forward, which the second-order gradient's finite "
            "differences cannot share; use the first-order gradient (drop --sec-approx), as DrNAS does"
        )
    fixed = cfg.mode in FIXED_MODES
    if fixed and cfg.select == "alpha":
        raise HwnasError(
            f"--mode {cfg.mode} trains the search network with α fixed, so α holds no genotype; add --select "
            "perturbation (DARTS-PT) or --select sampled (RSPS) to pick one"
        )
    if fixed and (cfg.cost is not None or cfg.sec_approx or cfg.beta_decay > 0):
        raise HwnasError(
            f"--mode {cfg.mode} never trains α, so --cost, --sec-approx and --beta-decay (which shape α) would do "
            "nothing; drop them, or use --mode softmax"
        )
    if cfg.select != "alpha" and cfg.max_skip is not None:
        raise HwnasError(
            f"--max-skip limits the skip_connect of α's derivation, which --select {cfg.select} does not use; "
            "drop one of them"
        )


@register_strategy(
    "darts",
    options=DartsConfig,
    space="cell",
    trains="a mixed-op cell network and α in turns",
    picks="the genotype of α (DARTS, CNAS)",
)
def search_darts(run: Run) -> Outcome:
    """Search `cfg.space` with DARTS (first or second order; CNAS's sparse genotypes, PC-DARTS's partial
    channels, a hardware cost on α); write arch.json, plots and a summary."""
    cfg: DartsConfig = run.cfg
    check_warmup(cfg)
    check_modes(cfg)
    base = load_cell_space(cfg.space)
    data = run.open_data(base.input_size)
    knobs = {"nodes": cfg.num_meta_node, **ops_knob(cfg.ops)}
    space = run.fit(base, data, **knobs, init_channels=cfg.init_channels, layers=cfg.layers)
    eval_space = space.with_knobs(init_channels=cfg.eval_init_channels, layers=cfg.eval_layers)
    weight_set, arch_set = search_split(data.train, cfg.train_portion, cfg.seed)
    cost, hardware_loss = None, None
    if cfg.cost is not None:
        table = run.cost_table(eval_space, cfg.cost == "latency")
        cost = CellCostModel.from_table(table, eval_space, cfg.cost, sparse=cfg.use_sparse, device=run.device)
        hardware_loss = HardwareLoss("add", weight=cfg.hc_weight, target=cfg.target, target_mode=cfg.target_mode)
        cheapest, cheapest_cells = cost.cheapest()
        hardware_loss.check_against(cheapest, cost.unit, cheapest_cells)
    directory = run.open_dir(space.name)
    torch.manual_seed(cfg.seed)  # the same initial weights and α whether or not a table was measured
    supernet = CellSupernet(space, cfg.partial_channels)
    drawn_epoch = 0  # the epoch whose α this process last drew; the summary does not draw the same α again

    def on_genotype(epoch: int, genotype: Genotype, record: dict[str, Any]) -> None:
        meta = {
            "strategy": "darts",
            "run": str(directory.path),
            "epoch": epoch + 1,
            "val_top1_supernet": record["val_top1"],
        }

        def write() -> None:
            nonlocal drawn_epoch
            with writing(directory.path, directory.hint()):
                write_epoch_files(directory.path, eval_space, genotype, record["alpha"], meta, data.pretrained_cfg)
            drawn_epoch = epoch + 1

        rank_zero(run.ctx, write)

    trainer = DartsTrainer(
        supernet,
        cfg,
        weight_set=weight_set,
        arch_set=arch_set,
        cost=cost,
        hardware_loss=hardware_loss,
        on_genotype=on_genotype,
        **run.trainer_options(data, {"config": cfg.to_dict()}, val_set=arch_set),  # never the test pool
    )
    run.start(trainer)
    with recompute(recompute_default(cfg.recompute, trainer, lambda x: trainer.model(x, trainer.arch.weights()))):
        trainer.fit()
    redraw = drawn_epoch != trainer.epoch
    return run.finish(lambda: _result(trainer, eval_space, cost, cfg, directory.path, data.pretrained_cfg, redraw))


def _result(
    trainer: DartsTrainer,
    eval_space: CellSpaceSpec,
    cost: CellCostModel | None,
    cfg: DartsConfig,
    run_path: Path,
    pretrained_cfg: PretrainedCfg,
    draw: bool,
) -> dict[str, Any]:
    """The final genotype as arch.json, the evaluation network's counts and measured latency, the summary."""
    health = None  # under --mode uniform or random α is fixed on purpose
    if cfg.mode not in FIXED_MODES:
        with torch.no_grad():
            probs = list(trainer.arch.op_probs().values())
        arch_params = list(trainer.arch.parameters())
        health = alpha_health(trainer.initial_arch, arch_params, trainer.architect.updates, probs)
        if not health["healthy"]:
            warn_user(health["message"])
    genotype = trainer.final_genotype()
    meta: dict[str, Any] = {
        "strategy": "darts",
        "run": str(run_path),
        "epoch": trainer.epoch,
        "order": "second" if cfg.sec_approx else "first",
        "mode": cfg.mode,
        "select": cfg.select,
        "sparse": cfg.use_sparse,
        "val_top1_supernet": trainer.history[-1]["val_top1"] if trainer.history else None,
    }
    derived = Architecture.from_genotype(eval_space, genotype)
    model = build_model(derived)
    profile = profile_arch(derived, model)
    measured = latency_on_target(model, eval_space.input_size, cfg)
    meta.update({"params": profile.params, "macs": profile.macs, "measured_latency_ms": measured.min_ms})
    predicted = cost.of(genotype) if cost is not None else None
    if cost is not None:
        meta[f"predicted_{cost.metric}"] = predicted
        if cfg.target is not None and predicted > cfg.target:
            warn_user(
                f"the genotype's {cost.metric} is {predicted:.4g} {cost.unit}, above --target {cfg.target:g} "
                f"{cost.unit}: the target is not met. Raise --hc-weight ({cfg.hc_weight:g}) or search more epochs"
            )
    strengths = {t: p.tolist() for t, p in trainer.arch.strengths().items()}
    arch = write_epoch_files(run_path, eval_space, genotype, strengths, meta, pretrained_cfg, draw)
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
        "measured_latency_ms": measured.min_ms,
        "latency_device": cfg.latency_device,
        "cost_metric": cost.metric if cost is not None else None,
        "predicted_cost": predicted,
        "eval_network": {"init_channels": cfg.eval_init_channels, "layers": cfg.eval_layers, "input": shape},
        "alpha_png": str(run_path / "alpha.png"),
        "cells": str(run_path / "cells"),
        "retrain": retrain,
        "alpha_health": health,
    }
    if cost is not None and cfg.target is not None:
        summary["target"] = {"value": cfg.target, "metric": cost.metric, "use": predicted / cfg.target}
    logger.info(f"genotype: {genotype.describe()}")
    logger.info(
        f"evaluation network (C{cfg.eval_init_channels}, {cfg.eval_layers} cells, {shape}): "
        f"{profile.params / 1e6:.3f}M params, {profile.macs / 1e6:.1f}M MACs, "
        f"{measured.min_ms:.3f} ms on {cfg.latency_device} ({cfg.latency_threads} thread(s))"
        + (f"; predicted {cost.metric} {predicted:.4g} {cost.unit}" if cost is not None else "")
    )
    logger.info(f"wrote {run_path / 'arch.json'}, alpha.png and cells/; retrain with:\n  {retrain}")
    return summary
