"""`train`, `evaluate` and `verify`: runs of one architecture on a dataset (`train` resumable from its directory)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .arch import Architecture, resolve_arch
from .data import Batch, DataPools
from .data.fitting import check_classes
from .data.imageset import FileSource
from .engine.config import TrainConfig
from .engine.distributed import Dist
from .engine.rundir import RunDir
from .engine.storage import writing
from .engine.trainer import Trainer
from .errors import HwnasError
from .log import warn_user
from .model import build_model, load_weights, save_weights
from .pipeline import Outcome, Run, RunData, check_identities, open_run_data, space_overrides, tell
from .verification import cosine_scores, read_pairs, verification_report


@dataclass
class Prepared(RunData):
    arch: Architecture  # fitted to the data: input size, classes, the run's knob overrides


def prepare(arch: Architecture, cfg: TrainConfig, pools: DataPools | None = None, ctx: Dist | None = None) -> Prepared:
    """Open the data (`pools`, else `cfg.data`) and fit the architecture to it (input size, classes, the
    run's knob overrides); `ctx`: the run's processes (rank 0 tells the user what changed)."""
    ctx = ctx or Dist()
    overrides = space_overrides(cfg, arch.is_cell, arch.space)
    fitted = "input_size" in arch.space_args  # an architecture file fitted to its data (or sized by hand)
    data = open_run_data(cfg, arch.spec.input_size, pools=pools, main=ctx.main, size_asked=fitted)
    check_identities(cfg, data.train, data.classes)
    resized = check_classes(pools, data.classes, arch.spec.knobs["num_classes"])
    if resized:
        tell(ctx, resized)
    arch = arch.with_space_args(input_size=data.shape, num_classes=len(data.classes), **overrides)
    arch = arch.with_pretrained_cfg(data.pretrained_cfg)
    return Prepared(**{f.name: getattr(data, f.name) for f in fields(data)}, arch=arch)


def train(
    arch: Architecture | str | os.PathLike[str] | None,
    cfg: TrainConfig,
    resume: str | None = None,
    explicit: set[str] | None = None,
    pools: DataPools | None = None,
) -> Outcome:
    """Train `arch` from scratch (or continue the run `resume`) and return where it was written.

    `explicit` names the options the user set (a resumed run may change only some of them); `pools`:
    the caller's data instead of `cfg.data`.
    """
    run = Run("train", cfg, resume=resume, explicit=explicit, needs="arch.json", pools=pools)
    if run.resuming:
        run_arch = Architecture.load(Path(run.cfg.run_dir) / "arch.json")
        if arch is not None and resolve_arch(arch).structure() != run_arch.structure():
            raise HwnasError(f"--resume {run.cfg.run_dir}: that run trains a different architecture than {arch}")
        arch = run_arch
    elif arch is None:
        raise HwnasError("train: give an architecture (file or zoo name) or --resume RUN_DIR")
    label = arch.space if isinstance(arch, Architecture) else Path(str(arch)).stem
    arch = resolve_arch(arch)
    cfg = run.cfg
    with run:
        data = prepare(arch, run.cfg, run.pools, run.ctx)
        run.pretrained_cfg = data.pretrained_cfg
        directory = run.open_dir(label)
        model = build_model(data.arch)
        meta = {"config": cfg.to_dict(), "arch": data.arch.to_dict()}
        trainer = Trainer(model, cfg, train_set=data.train, **run.trainer_options(data, meta))
        run.start(trainer, {"arch.json": data.arch.to_json(directory.path)})
        trainer.fit()
        shipped = trainer.ema.module if trainer.ema is not None else trainer.model
        final = {**final_metrics(trainer), "weights": "model.pt", "val_images": len(data.val)}

        def summarize() -> dict[str, Any]:
            _ship(directory, shipped.state_dict())
            return _result(final, trainer)

        outcome = run.finish(summarize)
        run.tell(_summary(final, trainer.best, directory.path / "model.pt"))
        outcome.best, outcome.final, outcome.history = trainer.best, final, trainer.history
        return outcome


def _ship(run: RunDir, weights: dict[str, torch.Tensor]) -> None:
    """model.pt, refused if it holds NaN or infinity."""
    with writing(run.path / "model.pt", f"; the checkpoints are kept: free space, then --resume {run.path}"):
        save_weights(weights, run.path / "model.pt")


METRICS = ("epoch", "val_top1", "val_top5", "val_loss")
ABOUT = (
    "final: the weights this run ships (model.pt: the last epoch's, the EMA's with --ema) on the validation "
    "set; best: the best epoch's figures on that same set, for reference only (not the weights in model.pt)"
)


def final_metrics(trainer: Trainer) -> dict[str, Any]:
    """Validation figures of the weights model.pt holds: measured at the last epoch's end, else now."""
    if trainer.history and trainer.history[-1]["epoch"] == trainer.epoch:
        return {k: trainer.history[-1][k] for k in METRICS}
    return {"epoch": trainer.epoch, **trainer.evaluate()}  # a resumed run that had already finished


def _result(final: dict[str, Any], trainer: Trainer) -> dict[str, Any]:
    return {"final": final, "best": trainer.best, "about": ABOUT, "last": trainer.history[-1:] or None}


def _summary(final: dict[str, Any], best: dict[str, Any], weights: Path) -> str:
    line = (
        f"done: val top-1 {final['val_top1']:.2f}% of the final weights (epoch {final['epoch']}, "
        f"{final['val_images']} validation images)"
    )
    if best and best.get("epoch") != final["epoch"]:
        line += f"; the best epoch, {best['epoch']}, had {best['val_top1']:.2f}% (not the weights shipped)"
    return f"{line}; weights in {weights}"


def _trained_model(arch: Architecture, weights: str, run: Run) -> tuple[Prepared, torch.nn.Module]:
    """The run's data, and the network fitted to it (the run's knob overrides) with `weights` loaded."""
    data = prepare(arch, run.cfg, run.pools, run.ctx)
    model = build_model(data.arch)
    load_weights(model, weights)
    return data, model


def evaluate(
    arch: Architecture | str | os.PathLike[str], weights: str, cfg: TrainConfig, pools: DataPools | None = None
) -> dict[str, float]:
    """Accuracy of `weights` on the validation split `cfg` selects. Writes nothing, unless `cfg.run_dir`
    is set: then that directory gets config.yaml and eval.json."""
    arch = resolve_arch(arch)
    run = Run("eval", cfg, pools=pools)
    with run:
        data, model = _trained_model(arch, weights, run)
        trainer = Trainer(model, cfg, train_set=data.train, **run.trainer_options(data, {}))
        metrics = {**trainer.evaluate(), "images": len(data.val)}
        if not math.isfinite(metrics["val_loss"]):
            warn_user(
                f"weights {weights}: the validation loss is {metrics['val_loss']} (the weights diverged or are "
                "damaged); JSON shows it as null"
            )
        if cfg.run_dir:
            directory = run.open_dir(arch.space)
            run.write_config()
            run.finish(lambda: {"weights": str(weights), **metrics}, arch_file=None, result="eval.json")
            run.tell(f"wrote {directory.path / 'eval.json'}")
        return metrics


def verify(
    arch: Architecture | str | os.PathLike[str],
    weights: str,
    pairs_file: str,
    images: str | None,
    cfg: TrainConfig,
    batch: int = 64,
) -> dict[str, Any]:
    """Face verification of trained weights on an LFW-style pairs file: the cosine similarity of the
    L2-normalised embeddings of each pair, accuracy at the best threshold (10-fold) and TAR@FAR=1e-3."""
    with Run("eval", cfg) as run:
        data, model = _trained_model(resolve_arch(arch), weights, run)
        if not hasattr(model, "embed"):
            raise HwnasError(f"verify: {type(model).__name__} networks have no embedding to compare")
        root = Path(images) if images else Path(pairs_file).parent
        pairs, same, folds = read_pairs(pairs_file, root)
        files = sorted({p for pair in pairs for p in pair})
        position = {p: i for i, p in enumerate(files)}
        c, h, w = data.arch.spec.input_size
        source = FileSource(files, (h, w), c)
        device = run.device
        model = model.to(device).eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, len(files), batch):
                ids = torch.arange(start, min(start + batch, len(files)))
                x = data.preprocess(Batch(source.read(ids), torch.zeros(len(ids), dtype=torch.long), ids), device)
                chunks.append(model.embed(x).cpu())
        embeddings = torch.cat(chunks)
        first = embeddings[[position[a] for a, _ in pairs]]
        second = embeddings[[position[b] for _, b in pairs]]
        report = verification_report(cosine_scores(first, second), same, folds)
        return {"weights": str(weights), "pairs_file": str(pairs_file), "images": len(files), **report}
