"""`Run`: the set-up every run shares, in one place.

`train`, `supernet train` and every search strategy run inside a `Run`: it reopens a resumed run's
config (only the options a resumed run may change are taken from the caller) and checks it was
written by the same kind of command; refuses a fresh run into a directory that holds one; starts
DistributedDataParallel under `torchrun` (or picks the device); opens the data (a `--data` spec or a
caller's `DataPools`) and fits the space to it; has rank 0 measure the cost table while the others
wait for its cache; and owns the run directory (one writer, locked) until the run ends, also after an
error. A strategy is the code between `Run.open_data` and `Run.finish`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .cost.build import build_table, load_or_build
from .cost.models import ArchitectureLatencyModel, load_latency_model, table_from_model
from .cost.table import CostTable
from .data import DataPools, ImageSet, Preprocess, open_dataset, train_val
from .data.fitting import check_classes, check_image_size
from .data.imageset import FileSource
from .engine.config import check_config, input_size_of
from .engine.distributed import Dist, barrier, init_distributed, rank_zero, shutdown
from .engine.rundir import RunDir, RunLock
from .errors import HwnasError
from .io import json_text
from .log import warn_user
from .model import build_model, load_weights
from .pretrained_cfg import PretrainedCfg

logger = logging.getLogger(__name__)

RUN_KINDS = {
    "train": "a `hwnas train` run",
    "search": "a `hwnas search` run",
    "supernet": "a `hwnas supernet train` run",
}
RESUME_MAY_CHANGE = {
    "epochs",
    "recompute",
    "device",
    "workers",
    "threads",
    "progress",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "max_bad_steps",
    "run_dir",
}
CELL_OVERRIDES = ("init_channels", "layers", "auxiliary")


@dataclass
class RunData:
    shape: list[int]
    train: ImageSet
    val: ImageSet
    classes: list[str]
    preprocess: Preprocess  # augments only when given an epoch's plan (training batches)
    pretrained_cfg: PretrainedCfg  # how the validation images reach the network: what a user's images need
    held_out: ImageSet | None  # a choosing run's untouched test pool (None: not choosing, or the dataset has none)


@dataclass
class Outcome:
    """What a run wrote: its directory, the architecture file (searches), and its figures.

    `summary` is result.json's content; for `train`, `final` holds the validation figures of the
    weights it ships (model.pt) and `best` those of its best epoch, for reference only."""

    run_dir: Path
    arch_path: Path | None = None
    summary: dict[str, Any] | None = None
    main_process: bool = True
    best: dict[str, Any] | None = None
    final: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None

    def model(self, pretrained: bool = True) -> nn.Module:
        """The network of the run's architecture file (`build_model(arch_path)`: with its `pretrained_cfg` where
        the file records one), with the weights the run ships loaded (`run_dir/model.pt`: `train` writes it, and
        a search over a trained supernet writes the pick's inherited weights). A DNAS or DARTS search ships an
        architecture and no weights: it is refused unless `pretrained=False`, which gives the network with fresh
        weights (to train), as for any run."""
        if self.arch_path is None:
            raise HwnasError(
                f"{self.run_dir}: this run ships a supernet (supernet.pt), not one network; expected the Outcome "
                "of train or search (search this one with hwnas.search(..., supernet=RUN_DIR))"
            )
        network = build_model(self.arch_path)
        if pretrained:
            weights = self.run_dir / "model.pt"
            if not weights.is_file():
                raise HwnasError(
                    f"{self.run_dir}: ships no weights (no model.pt; a DNAS or DARTS search ships "
                    f"{self.arch_path.name} alone); expected model(pretrained=False) for its network with fresh "
                    "weights, or hwnas.train(arch_path)"
                )
            load_weights(network, weights)
        return network


def tell(ctx: Dist, message: str) -> None:
    """A message for the user, once (rank 0), through the `hwnas` logger."""
    if ctx.main:
        logger.info(message)


def parse_shape(text: str) -> list[int]:
    """`--input CxHxW` as three integers (`input_size_of`, the one parser of it; the config checked its bounds)."""
    size = input_size_of(text)
    if size is None:
        raise HwnasError(f"--input {text!r}: expected CxHxW with positive integers, e.g. 3x32x32")
    return size


def open_run_data(
    cfg: Any,
    default_shape: tuple[int, ...],
    choosing: bool = False,
    pools: DataPools | None = None,
    main: bool = True,
    size_asked: bool = False,
) -> RunData:
    """The run's dataset at `--input` (else `default_shape`), its train/validation split and preprocessing.

    `pools`: a caller's data (see `hwnas.data`), used instead of opening `cfg.data`. A run that chooses
    among architectures by their validation accuracy (`choosing`: one-shot supernets and their searches)
    validates on `--val-split` of the training pool even where the dataset has a test pool, so the test
    pool stays held out from every choice (`RunData.held_out`: what the network it ships is measured on).
    Images resized to a size nobody asked for (`--input`; for a `--data` spec also `size_asked`: the
    architecture file records its input size) are refused or warned about (`hwnas.data.fitting`); `main`: this
    process says so (rank 0)."""
    shape = parse_shape(cfg.input) if cfg.input else list(default_shape)
    spec = None
    if pools is None:
        pools, spec = open_dataset(cfg.data, tuple(shape), cfg.classes, cfg.seed), cfg.data
    else:
        check_caller_pools(pools, cfg, shape)
    asked = bool(cfg.input) or (size_asked and spec is not None)  # a caller's own images: only input= asks
    reshaped = check_image_size(pools, shape, asked, spec)
    if reshaped and main:
        warn_user(reshaped)
    train, val = train_val(pools.train, None if choosing else pools.test, cfg.val_split, cfg.seed)
    preprocess = Preprocess(
        tuple(shape),
        pools.mean,
        pools.std,
        cfg.crop_padding,
        pools.mirror_safe if cfg.flip is None else cfg.flip,
        cfg.cutout_length if cfg.cutout else 0,
    )
    pretrained_cfg = PretrainedCfg.for_data(shape, pools.mean, pools.std, pools.classes, crop_mode(val))
    held_out = pools.test if choosing else None
    return RunData(shape, train, val, pools.classes, preprocess, pretrained_cfg, held_out)


def crop_mode(images: ImageSet) -> str:
    """How `images` reach the network's size, as a `PretrainedCfg.crop_mode`: image files are decoded resized on
    the short side and centre-cropped (`FileSource`, bilinear); decoded images (digits, CIFAR, a torch Dataset)
    are resized whole by `Preprocess` (bilinear)."""
    return "center" if isinstance(images.source, FileSource) else "squash"


def check_caller_pools(pools: DataPools, cfg: Any, shape: list[int]) -> None:
    """A caller's data must fit the network's input channels; class subsets are the caller's to make."""
    if cfg.classes is not None:
        raise HwnasError(
            f"classes={cfg.classes!r} selects classes of a --data spec; with your own dataset, pass the classes "
            f"you want in it (or pools_from_datasets(..., classes=...))"
        )
    have = pools.train[0].images.shape[1]
    if have not in (1, shape[0]):
        raise HwnasError(
            f"the dataset's images have {have} channels, the network expects {shape[0]}; give input="
            f'"{have}x{shape[1]}x{shape[2]}" (or an architecture with {have} input channels)'
        )


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


def run_kind(config: dict[str, Any]) -> str:
    """What wrote a run's config.yaml: a search names its strategy, a supernet training its sampling; train
    neither."""
    if "strategy" in config:
        return "search"
    if "sampling" in config:
        return "supernet"
    return "train"


def resume_target(resume: str) -> tuple[Path, str | None]:
    """The run directory `--resume` names, and the checkpoint file it names (None: the latest good one)."""
    path = Path(resume)
    if path.is_dir():
        return path, None
    if path.is_file() and path.parent.name == "checkpoints":
        return path.parent.parent, path.name
    raise HwnasError(f"--resume {resume}: expected a run directory or RUN_DIR/checkpoints/<file>.pt")


def reopen_config(resume: str, cfg: Any, explicit: set[str] | None, needs: str) -> tuple[Any, Path, str | None]:
    """The config of the run `resume` with the options the user set laid over it (only those a resumed
    run may change), its directory, and the checkpoint file asked for (None: the latest good one)."""
    run_path, checkpoint_name = resume_target(resume)
    saved_run = RunDir(run_path)
    if not saved_run.config_path.is_file() or not (run_path / needs).is_file():
        raise HwnasError(
            f"--resume {resume}: {run_path} has no config.yaml and {needs} (not an hwnas run of this kind)"
        )
    saved = saved_run.read_config()
    merged = {**saved, **{k: getattr(cfg, k) for k in (explicit or set())}}
    known = type(cfg).__dataclass_fields__
    cfg = check_config(type(cfg)(**{k: v for k, v in merged.items() if k in known}))
    for f in fields(cfg):
        if f.name not in RESUME_MAY_CHANGE and f.name in saved and saved[f.name] != getattr(cfg, f.name):
            raise HwnasError(
                f"--resume {run_path}: {f.name} was {saved[f.name]!r} in that run, got {getattr(cfg, f.name)!r}; "
                f"a resumed run keeps its options except {', '.join(sorted(RESUME_MAY_CHANGE))}"
            )
    cfg.run_dir = str(run_path)
    return cfg, run_path, checkpoint_name


def shared_path(path: Path, ctx: Dist) -> Path:
    """Every rank uses rank 0's run directory name."""
    if not ctx.enabled:
        return path
    import torch.distributed as dist

    box = [str(path)]
    dist.broadcast_object_list(box, src=0)
    return Path(box[0])


def rank_zero_first(ctx: Dist, make: Callable[[], Any]) -> Any:
    """`make()` on rank 0, then on the others (e.g. rank 0 measures a cost table, the others read its cache)."""
    made = None
    for first in (True, False):
        if ctx.main == first:
            made = make()
        barrier(ctx)
    return made


def cost_table(space: Any, cfg: Any, need_latency: bool, progress: bool = True) -> CostTable:
    """The measured (cached) table when latency is needed or a table file is given, else MACs and params only."""
    if need_latency or cfg.latency_table:
        return load_or_build(
            space,
            device=cfg.latency_device,
            threads=cfg.latency_threads,
            batch=cfg.latency_batch,
            table=cfg.latency_table,
            progress=progress,
        )
    return build_table(space, measure=False, progress=False)


def has_checkpoints(path: Path) -> bool:
    """Whether the run directory `path` holds checkpoints (a run that can be resumed)."""
    checkpoints = path / "checkpoints"
    return checkpoints.is_dir() and any(checkpoints.iterdir())


class Run:
    """One run of a command (`kind`: train, search, supernet, darts), used as a context manager.

    `needs`: the file a resumable run of this kind holds besides config.yaml. `pools`: the caller's
    data instead of `cfg.data`. `latency_model`: prices layers instead of a measured table (see
    `hwnas.cost.models`). `holds_run`: what marks a directory as holding a run already (default:
    checkpoints)."""

    def __init__(
        self,
        kind: str,
        cfg: Any,
        *,
        resume: str | None = None,
        explicit: set[str] | None = None,
        needs: str = "config.yaml",
        pools: DataPools | None = None,
        latency_model: Any = None,
        holds_run: Callable[[Path], bool] | None = None,
    ) -> None:
        self.kind, self.resume, self.pools, self.latency_model = kind, resume, pools, latency_model
        self.checkpoint_name: str | None = None
        self.holds_run = holds_run or has_checkpoints
        self.pretrained_cfg: PretrainedCfg | None = None  # the data's, once `open_data` opened it
        if resume is not None:
            cfg, run_path, self.checkpoint_name = reopen_config(resume, cfg, explicit, needs)
            found = run_kind(RunDir(run_path).read_config())
            if found != kind:
                raise HwnasError(f"--resume {resume}: {run_path} is a `hwnas {found}` run, expected {RUN_KINDS[kind]}")
        self.cfg = cfg
        self.dir: RunDir | None = None
        self.ctx = Dist()
        self.device = torch.device("cpu")

    def _holds(self, path: Path) -> bool:
        return path.is_dir() and self.holds_run(path)

    @property
    def resuming(self) -> bool:
        return self.resume is not None

    def __enter__(self) -> Run:
        """Refuse a fresh run into a directory that holds one, then start DDP (or pick the device)."""
        cfg = self.cfg
        if not self.resuming and cfg.run_dir and self._holds(Path(cfg.run_dir)):
            lock = RunLock(cfg.run_dir)
            lock.acquire()  # a run still writing there is named first (its PID), then the finished one
            lock.release()
            raise HwnasError(f"--run-dir {cfg.run_dir} already holds a run; continue it with --resume {cfg.run_dir}")
        threads = getattr(self.cfg, "threads", None)
        if threads:
            torch.set_num_threads(threads)
        self.ctx, self.device = init_distributed(self.cfg.device)
        torch.manual_seed(self.cfg.seed)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.dir is not None:
                self.dir.close()  # releases the run directory's lock, also after an error
        finally:
            shutdown(self.ctx)

    def tell(self, message: str) -> None:
        tell(self.ctx, message)

    def open_data(self, default_shape: tuple[int, ...], choosing: bool = False) -> RunData:
        """The run's data (see `open_run_data`), its identities checked for margin heads."""
        data = open_run_data(self.cfg, default_shape, choosing, self.pools, self.ctx.main)
        check_identities(self.cfg, data.train, data.classes)
        self.pretrained_cfg = data.pretrained_cfg
        return data

    def fit(self, space: Any, data: RunData, **knobs: Any) -> Any:
        """`space` at the data's input size and classes, with the run's knob overrides and `knobs`; classes only
        inferred from a caller's labels must be the space's own number (`hwnas.data.fitting`)."""
        resized = check_classes(self.pools, data.classes, space.knobs["num_classes"])
        if resized:
            self.tell(resized)
        overrides = space_overrides(self.cfg, space.kind == "cell", space.name)
        return space.with_knobs(input_size=data.shape, num_classes=len(data.classes), **{**overrides, **knobs})

    def user_latency_model(self) -> Any:
        """The caller's latency model (`latency_model=` in Python, `--latency-model` by name), or None."""
        named = getattr(self.cfg, "latency_model", None)
        if self.latency_model is not None and named:
            raise HwnasError("give a latency model once: as an object (latency_model=) or by name (--latency-model)")
        if (self.latency_model is not None or named) and getattr(self.cfg, "latency_table", None):
            raise HwnasError("--latency-model and --latency-table both price latency; give one of them")
        return self.latency_model if self.latency_model is not None else load_latency_model(named) if named else None

    def cost_table(self, space: Any, need_latency: bool, per_layer: bool = True) -> CostTable:
        """The space's cost table: from the caller's layer latency model, else measured (or read from its cache
        or `--latency-table`) by rank 0 while the others wait for its cache. `per_layer`: the strategy needs
        per-layer latency (DNAS, DARTS); one-shot searches may price whole architectures instead."""
        model = self.user_latency_model()
        if model is not None and (per_layer or not isinstance(model, ArchitectureLatencyModel)):
            return table_from_model(space, model, batch=getattr(self.cfg, "latency_batch", 1))
        progress = self.cfg.progress and self.ctx.main
        need_latency = need_latency and model is None  # an architecture model prices latency itself
        return rank_zero_first(self.ctx, lambda: cost_table(space, self.cfg, need_latency, progress=progress))

    def trainer_options(self, data: RunData, meta: dict[str, Any], val_set: ImageSet | None = None) -> dict[str, Any]:
        """The Trainer keywords every run passes alike: validation data (`data.val`, or a search's own split:
        `val_set`), preprocessing, device, run directory, DDP context, and the checkpoints' `meta`."""
        return {
            "val_set": data.val if val_set is None else val_set,
            "preprocess": data.preprocess,
            "device": self.device,
            "run": self.dir,
            "ctx": self.ctx,
            "meta": meta,
        }

    def open_dir(self, label: str) -> RunDir:
        """The run directory every rank agrees on, locked by rank 0 until the run ends; a second writer,
        or a fresh run into a directory that already holds one, is refused on every rank."""
        cfg = self.cfg
        run_path = shared_path(Path(cfg.run_dir) if cfg.run_dir else RunDir.default_path(self.kind, label), self.ctx)
        run = RunDir(run_path, getattr(cfg, "keep_checkpoints", 3), writer=self.ctx.main)
        rank_zero(self.ctx, lambda: self._claim(run))
        cfg.run_dir = str(run_path)
        self.dir = run
        return run

    def _claim(self, run: RunDir) -> None:
        run.acquire()
        if not self.resuming and self._holds(run.path):
            run.close()
            raise HwnasError(f"--run-dir {run.path} already holds a run; continue it with --resume {run.path}")

    def start(self, trainer: Any, files: dict[str, str] | None = None) -> None:
        """Load the checkpoint to resume from, or write the new run's config and `files`."""
        run = self.require_dir()
        if self.resuming:
            found = run.checkpoints.load_latest(upto=self.checkpoint_name)
            if found is None:
                raise HwnasError(f"--resume {self.resume}: no readable checkpoint in {run.checkpoints.directory}")
            trainer.load_state_dict(found[1])
            run.truncate_metrics(trainer.step)
            self.tell(f"resuming {run.path} from {found[0].name} (epoch {trainer.epoch + 1}, step {trainer.step})")
            return
        self.write_config(files)
        self.tell(f"run directory: {run.path}")

    def write_config(self, files: dict[str, str] | None = None) -> None:
        """A fresh run's config.yaml (and `files`); a resumed run keeps its own."""
        run = self.require_dir()
        if not self.resuming:
            run.write_config(self.cfg.to_dict())
            for name, text in (files or {}).items():
                run.write_text(name, text)

    def require_dir(self) -> RunDir:
        if self.dir is None:
            raise RuntimeError("Run.open_dir() comes before writing into the run directory")
        return self.dir

    def finish(
        self, summarize: Callable[[], dict[str, Any]], arch_file: str | None = "arch.json", result: str = "result.json"
    ) -> Outcome:
        """On rank 0, `summarize()` (which writes the run's results) and `result` (result.json), which also records
        the data's `pretrained_cfg`; then every rank closes the run directory."""
        run = self.require_dir()
        summary: dict[str, Any] = {}
        if self.ctx.main:
            summary = summarize()
            if self.pretrained_cfg is not None:
                summary["pretrained_cfg"] = self.pretrained_cfg.to_dict()
            run.write_text(result, json_text(summary, indent=1))
        run.close()
        barrier(self.ctx)
        arch_path = run.path / arch_file if arch_file else None
        return Outcome(run.path, arch_path, summary, self.ctx.main)
