"""`train` and `evaluate`: a run from an architecture, a config and a dataset, resumable from its directory."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..arch import Architecture, resolve_arch
from ..data import ImageSet, Preprocess, open_dataset, train_val
from ..errors import HwnasError
from ..model import build_model, load_weights, save_weights
from .config import TrainConfig, check_config
from .distributed import Dist, barrier, init_distributed, pick_device, rank_zero, shutdown
from .rundir import RunDir
from .storage import writing
from .trainer import Trainer

RESUME_MAY_CHANGE = {
    "epochs",
    "device",
    "workers",
    "progress",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "max_bad_steps",
    "run_dir",
}


def parse_shape(text: str) -> list[int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise HwnasError(f"--input {text!r}: expected CxHxW with positive integers, e.g. 3x32x32")
    return [int(p) for p in parts]


@dataclass
class Prepared:
    arch: Architecture
    train: ImageSet
    val: ImageSet
    classes: list[str]
    preprocess: Preprocess  # augments only when given an epoch's plan (training batches)


@dataclass
class RunData:
    shape: list[int]
    train: ImageSet
    val: ImageSet
    classes: list[str]
    preprocess: Preprocess  # augments only when given an epoch's plan (training batches)


def open_run_data(cfg: TrainConfig, default_shape: tuple[int, ...], choosing: bool = False) -> RunData:
    """The run's dataset at `--input` (else `default_shape`), its train/validation split and preprocessing.

    A run that chooses among architectures by their validation accuracy (`choosing`: one-shot supernets
    and their searches) validates on `--val-split` of the training pool even where the dataset has a
    test pool, so the test pool stays held out from every choice."""
    shape = parse_shape(cfg.input) if cfg.input else list(default_shape)
    pools = open_dataset(cfg.data, tuple(shape), cfg.classes, cfg.seed)
    train, val = train_val(pools.train, None if choosing else pools.test, cfg.val_split, cfg.seed)
    preprocess = Preprocess(
        tuple(shape), pools.mean, pools.std, cfg.crop_padding, cfg.flip, cfg.cutout_length if cfg.cutout else 0
    )
    return RunData(shape, train, val, pools.classes, preprocess)


CELL_OVERRIDES = ("init_channels", "layers", "auxiliary")


def space_overrides(cfg: Any, cell: bool, space: str) -> dict[str, Any]:
    """The knobs a run's options change: cell sizes, the embedding width, a cosine classifier for margin heads."""
    overrides = {k: getattr(cfg, k) for k in CELL_OVERRIDES if getattr(cfg, k, None) is not None}
    if overrides and not cell:
        flag = "--" + next(iter(overrides)).replace("_", "-")
        raise HwnasError(f"{flag} applies to cell-space architectures (DARTS, CNAS); {space} is layer-wise")
    if getattr(cfg, "feature_dim", None) is not None:
        if cell:
            raise HwnasError(
                f"--feature-dim applies to layer-wise spaces (the last conv's width); {space} is a cell space"
            )
        overrides["last_channels"] = cfg.feature_dim
    if cfg.head != "softmax":
        overrides["classifier"] = "cosine"
    return overrides


def check_identities(cfg: Any, train: ImageSet, classes: list[str]) -> None:
    """A margin head learns from several images of each identity; one line names an identity that has fewer."""
    if cfg.head == "softmax":
        return
    counts = torch.bincount(train.labels[train.index], minlength=len(classes))
    thin = [i for i, n in enumerate(counts.tolist()) if n < 2]
    if thin:
        raise HwnasError(
            f"--head {cfg.head}: identity {classes[thin[0]]!r} has {int(counts[thin[0]])} training image(s) "
            f"({len(thin)} identities have fewer than 2); a margin head needs at least 2 images per identity"
        )


def prepare(arch: Architecture, cfg: TrainConfig) -> Prepared:
    """Open the data and fit the architecture to it (input size, number of classes, the run's knob overrides)."""
    overrides = space_overrides(cfg, arch.is_cell, arch.space)
    data = open_run_data(cfg, arch.spec.input_size)
    check_identities(cfg, data.train, data.classes)
    arch = arch.with_space_args(input_size=data.shape, num_classes=len(data.classes), **overrides)
    return Prepared(arch, data.train, data.val, data.classes, data.preprocess)


def _check_resume(saved: dict[str, Any], cfg: Any, run: Path) -> None:
    for f in fields(cfg):
        if f.name not in RESUME_MAY_CHANGE and f.name in saved and saved[f.name] != getattr(cfg, f.name):
            raise HwnasError(
                f"--resume {run}: {f.name} was {saved[f.name]!r} in that run, got {getattr(cfg, f.name)!r}; "
                f"a resumed run keeps its options except {', '.join(sorted(RESUME_MAY_CHANGE))}"
            )


def _resume_target(resume: str) -> tuple[Path, str | None]:
    path = Path(resume)
    if path.is_dir():
        return path, None
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent, path.name
    raise HwnasError(f"--resume {resume}: expected a run directory or RUN_DIR/checkpoints/<file>.pt")


@dataclass
class Outcome:
    """Where a training run was written; `final`: validation figures of the weights it ships (model.pt),
    `best`: those of its best epoch, for reference only (those weights are not shipped)."""

    run_dir: Path
    best: dict[str, Any]
    history: list[dict[str, Any]]
    main_process: bool = True
    final: dict[str, Any] = field(default_factory=dict)


def reopen_config(resume: str, cfg: Any, explicit: set[str] | None, needs: str) -> tuple[Any, Path, str | None]:
    """The config of the run `resume` with the options the user set laid over it (only those a resumed
    run may change), its directory, and the checkpoint file asked for (None: the latest good one)."""
    run_path, checkpoint_name = _resume_target(resume)
    saved_run = RunDir(run_path)
    if not saved_run.config_path.is_file() or not (run_path / needs).is_file():
        raise HwnasError(
            f"--resume {resume}: {run_path} has no config.yaml and {needs} (not an hwnas run of this kind)"
        )
    saved = saved_run.read_config()
    merged = {**saved, **{k: getattr(cfg, k) for k in (explicit or set())}}
    known = type(cfg).__dataclass_fields__
    cfg = check_config(type(cfg)(**{k: v for k, v in merged.items() if k in known}))
    _check_resume(saved, cfg, run_path)
    cfg.run_dir = str(run_path)
    return cfg, run_path, checkpoint_name


def open_run(kind: str, label: str, cfg: Any, ctx: Dist, resuming: bool) -> RunDir:
    """The run directory every rank agrees on, locked by rank 0 for the whole run (close() releases it); a
    second writer, or a fresh run into a directory that already holds one, is refused on every rank."""
    run_path = shared_path(Path(cfg.run_dir) if cfg.run_dir else RunDir.default_path(kind, label), ctx)
    run = RunDir(run_path, cfg.keep_checkpoints, writer=ctx.main)
    rank_zero(ctx, lambda: _claim(run, resuming))
    cfg.run_dir = str(run_path)
    return run


def _claim(run: RunDir, resuming: bool) -> None:
    run.acquire()
    if not resuming and run.checkpoints.entries():
        run.close()
        raise HwnasError(f"--run-dir {run.path} already holds a run; continue it with --resume {run.path}")


def start_or_resume(
    trainer: Trainer,
    run: RunDir,
    cfg: Any,
    ctx: Dist,
    resume: str | None,
    checkpoint_name: str | None,
    files: dict[str, str],
) -> None:
    """Load the checkpoint to resume from, or write the new run's config and `files`."""
    if resume is not None:
        found = run.checkpoints.load_latest(upto=checkpoint_name)
        if found is None:
            raise HwnasError(f"--resume {resume}: no readable checkpoint in {run.checkpoints.directory}")
        trainer.load_state_dict(found[1])
        run.truncate_metrics(trainer.step)
        tell(ctx, f"resuming {run.path} from {found[0].name} (epoch {trainer.epoch + 1}, step {trainer.step})")
    else:
        run.write_config(cfg.to_dict())
        for name, text in files.items():
            run.write_text(name, text)
        tell(ctx, f"run directory: {run.path}")


def train(
    arch: Architecture | str | None, cfg: TrainConfig, resume: str | None = None, explicit: set[str] | None = None
) -> Outcome:
    """Train `arch` from scratch (or continue the run `resume`) and return where it was written.

    `explicit` names the options the user set (a resumed run may change only some of them).
    """
    checkpoint_name = None
    if resume is not None:
        cfg, run_path, checkpoint_name = reopen_config(resume, cfg, explicit, "arch.json")
        run_arch = Architecture.load(run_path / "arch.json")
        if arch is not None and resolve_arch(arch).structure() != run_arch.structure():
            raise HwnasError(f"--resume {run_path}: that run trains a different architecture than {arch}")
        arch = run_arch
    elif arch is None:
        raise HwnasError("train: give an architecture (file or zoo name) or --resume RUN_DIR")
    label = arch.space if isinstance(arch, Architecture) else Path(str(arch)).stem
    arch = resolve_arch(arch)

    ctx, device = init_distributed(cfg.device)
    run = None
    try:
        torch.manual_seed(cfg.seed)
        data = prepare(arch, cfg)
        run = open_run("train", label, cfg, ctx, resume is not None)
        model = build_model(data.arch)
        trainer = Trainer(
            model,
            cfg,
            train_set=data.train,
            val_set=data.val,
            preprocess=data.preprocess,
            device=device,
            run=run,
            ctx=ctx,
            meta={"config": cfg.to_dict(), "arch": data.arch.to_dict()},
        )
        start_or_resume(trainer, run, cfg, ctx, resume, checkpoint_name, {"arch.json": data.arch.to_json()})
        trainer.fit()
        shipped = trainer.ema.module if trainer.ema is not None else trainer.model
        final = {**final_metrics(trainer), "weights": "model.pt", "val_images": len(data.val)}
        rank_zero(ctx, lambda: _ship(run, shipped.state_dict(), _result(final, trainer)))
        run.close()
        barrier(ctx)
        tell(ctx, _summary(final, trainer.best, run.path / "model.pt"))
        return Outcome(run.path, trainer.best, trainer.history, ctx.main, final)
    finally:
        if run is not None:
            run.close()
        shutdown(ctx)


def _ship(run: RunDir, weights: dict[str, torch.Tensor], result: dict[str, Any]) -> None:
    """model.pt (refused if it holds NaN or infinity) and result.json (strict JSON)."""
    with writing(run.path / "model.pt", f"; the checkpoints are kept: free space, then --resume {run.path}"):
        save_weights(weights, run.path / "model.pt")
    run.write_json("result.json", result)


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


def _trained_model(arch: Architecture, weights: str, cfg: TrainConfig) -> tuple[Prepared, torch.nn.Module]:
    """The run's data, and the network fitted to it (the run's knob overrides) with `weights` loaded."""
    data = prepare(arch, cfg)
    model = build_model(data.arch)
    load_weights(model, weights)
    return data, model


def evaluate(arch: Architecture | str, weights: str, cfg: TrainConfig) -> tuple[Path, dict[str, float]]:
    """Accuracy of `weights` on the validation split `cfg` selects; writes eval.json in a run directory."""
    arch = resolve_arch(arch)
    ctx, device = init_distributed(cfg.device)
    try:
        data, model = _trained_model(arch, weights, cfg)
        label = Path(weights).parent.name if Path(weights).name == "model.pt" else arch.space
        run_path = shared_path(Path(cfg.run_dir) if cfg.run_dir else RunDir.default_path("eval", label), ctx)
        cfg.run_dir = str(run_path)
        run = RunDir(run_path, writer=ctx.main)
        trainer = Trainer(
            model, cfg, train_set=data.train, val_set=data.val, preprocess=data.preprocess, device=device, ctx=ctx
        )
        metrics = trainer.evaluate()
        run.write_config(cfg.to_dict())
        run.write_json("eval.json", {"weights": str(weights), "images": len(data.val), **metrics})
        return run_path, metrics
    finally:
        shutdown(ctx)


def shared_path(path: Path, ctx: Dist) -> Path:
    """Every rank uses rank 0's run directory name."""
    if not ctx.enabled:
        return path
    import torch.distributed as dist

    box = [str(path)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def tell(ctx: Dist, message: str) -> None:
    """Print a message for the user on stderr, once (rank 0)."""
    if ctx.main:
        print(message, file=sys.stderr)


def verify(
    arch: Architecture | str, weights: str, pairs_file: str, images: str | None, cfg: TrainConfig, batch: int = 64
) -> dict[str, Any]:
    """Face verification of trained weights on an LFW-style pairs file: the cosine similarity of the
    L2-normalised embeddings of each pair, accuracy at the best threshold (10-fold) and TAR@FAR=1e-3."""
    from ..data import Batch
    from ..data.imageset import FileSource
    from ..verification import cosine_scores, read_pairs, verification_report

    data, model = _trained_model(resolve_arch(arch), weights, cfg)
    if not hasattr(model, "embed"):
        raise HwnasError(f"verify: {type(model).__name__} networks have no embedding to compare")
    root = Path(images) if images else Path(pairs_file).parent
    pairs, same, folds = read_pairs(pairs_file, root)
    files = sorted({p for pair in pairs for p in pair})
    position = {p: i for i, p in enumerate(files)}
    c, h, w = data.arch.spec.input_size
    source = FileSource(files, (h, w), c)
    device = pick_device(cfg.device)
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
