"""`Trainer`: the one training loop of hwnas (supernets and standalone models alike).

Strategies customise it through a small interface rather than copying it: override
`train_step` (what one batch does), `loss` (how outputs are scored), `extra_state` /
`load_extra_state` (what else a checkpoint holds) and `on_epoch_end`.

Models may return `AuxiliaryOutputs(logits, aux_logits)` in training mode: the loss then adds
`--auxiliary-weight` times the auxiliary head's loss. Any `DropPath` module in the model gets
the probability `--drop-path-prob * epoch / epochs` at the start of each epoch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..blocks import set_drop_path
from ..data import EpochLoader, ImageSet, Preprocess
from ..errors import HwnasError
from ..nets import AuxiliaryOutputs
from .buffers import BufferSnapshot, buffers_finite, restore_buffers, snapshot_buffers
from .config import TrainConfig
from .distributed import Dist, all_reduce_sum, rank_zero
from .heads import margin_logits, margin_settings
from .optim import build_optimizer, build_schedule
from .rundir import RunDir

logger = logging.getLogger(__name__)


class TrainingError(HwnasError):
    """A run that cannot go on (e.g. the loss stayed non-finite)."""


@dataclass
class Phase:
    """A pass over one loader within an epoch, e.g. weights on one split, then θ on another."""

    name: str
    loader: EpochLoader
    step: Callable[[torch.Tensor, torch.Tensor], StepResult]


def first_non_finite(value: Any, where: str = "") -> str | None:
    """The key path of the first floating-point tensor in `value` (nested dicts and lists) holding NaN or
    infinity, else None."""
    if torch.is_tensor(value):
        return where if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        found = first_non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


@dataclass
class StepResult:
    loss: float
    correct: int
    count: int
    skipped: bool = False


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def evaluate_model(
    model: nn.Module,
    loader: EpochLoader,
    preprocess: Preprocess,
    device: torch.device,
    autocast: Callable[[], Any] | None = None,
    ctx: Dist | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (%) of `model` in eval mode over `loader` (all ranks summed)."""
    ctx = ctx or Dist()
    model.eval()
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    k = min(5, linear[-1].out_features if linear else 5)
    sums = [0.0, 0.0, 0.0, 0.0]
    with torch.no_grad(), autocast() if autocast else contextlib.nullcontext():
        for batch in loader.epoch(0):
            x = preprocess(batch, device, None)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = batch.labels.to(device)
            out = model(x).float()
            top = out.topk(k, 1).indices
            sums[0] += float(F.cross_entropy(out, y, reduction="sum"))
            sums[1] += float((top[:, 0] == y).sum())
            sums[2] += float((top == y[:, None]).any(1).sum())
            sums[3] += len(y)
    loss, top1, top5, n = all_reduce_sum(sums, device, ctx)
    return {"val_loss": loss / max(n, 1), "val_top1": 100 * top1 / max(n, 1), "val_top5": 100 * top5 / max(n, 1)}


class Trainer:
    find_unused_parameters = False  # DDP: True when some parameters sit out a step (sampled paths)

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        *,
        train_set: ImageSet,
        val_set: ImageSet,
        preprocess: Preprocess,
        device: torch.device,
        run: RunDir | None = None,
        ctx: Dist | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        ctx = ctx or Dist()
        if cfg.amp == "fp16" and device.type != "cuda":
            raise HwnasError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        if cfg.batch_size % ctx.world:
            raise HwnasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} DDP processes")
        self.cfg, self.ctx, self.device, self.run, self.meta = cfg, ctx, device, run, dict(meta or {})
        self.preprocess = preprocess
        self.model = model.to(device)
        auto = self.faster_channels_last(device) and not ctx.enabled  # measured in one process only
        self.channels_last = auto if cfg.channels_last is None else cfg.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = (
            DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=self.find_unused_parameters,
            )
            if ctx.enabled
            else self.model
        )
        per_rank = cfg.batch_size // ctx.world
        self.train_loader = EpochLoader(
            train_set, per_rank, train=True, seed=cfg.seed, rank=ctx.rank, world=ctx.world, workers=cfg.workers
        )
        self.val_loader = EpochLoader(
            val_set, per_rank, train=False, rank=ctx.rank, world=ctx.world, workers=cfg.workers
        )
        if len(self.train_loader) == 0:
            raise HwnasError(f"--batch-size {cfg.batch_size} is larger than the {len(train_set)} training images")
        self.steps_per_epoch = len(self.train_loader)
        self.optimizer = build_optimizer(self.model, cfg)
        self.schedule = build_schedule(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.ema = (
            torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True
            )
            if cfg.ema
            else None
        )
        self.epoch, self.phase, self.batch, self.step, self.bad_steps = 0, 0, 0, 0, 0
        self.sums: dict[str, list[float]] = {}  # per phase of the current epoch: loss * n, correct, n
        self.best: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.log_error: HwnasError | None = None  # a metrics write that failed on rank 0 (torchrun)

    def split_loader(self, dataset: ImageSet, seed: int, steps: int | None = None) -> EpochLoader:
        """A shuffled loader over another split (e.g. the architecture parameters'), sharded like training's;
        with `steps`, exactly that many batches an epoch."""
        return EpochLoader(
            dataset,
            self.cfg.batch_size // self.ctx.world,
            train=True,
            seed=seed,
            rank=self.ctx.rank,
            world=self.ctx.world,
            workers=self.cfg.workers,
            steps=steps,
        )

    # ---- the interface strategies customise -------------------------------------------------
    def loss(self, outputs: torch.Tensor | AuxiliaryOutputs, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the classifier (through the margin head's logits, if one is set), plus the
        weighted loss of an auxiliary head (always a plain linear classifier)."""
        smoothing = self.cfg.label_smoothing
        logits = outputs.logits if isinstance(outputs, AuxiliaryOutputs) else outputs
        if self.cfg.head != "softmax":
            scale, margin = margin_settings(self.cfg.head, self.cfg.margin_scale, self.cfg.margin)
            logits = margin_logits(logits, labels, self.cfg.head, scale, margin)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
        if isinstance(outputs, AuxiliaryOutputs):
            aux = F.cross_entropy(outputs.aux_logits.float(), labels, label_smoothing=smoothing)
            loss = loss + self.cfg.auxiliary_weight * aux
        return loss

    def autocast(self):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.amp)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The training forward pass (a supernet strategy passes its path here)."""
        return self.net(images)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        """Forward, backward and update on one batch; a non-finite loss or gradient skips the update."""
        buffers = snapshot_buffers(self.model)
        with self.autocast():
            outputs = self.forward(images)
            loss = self.loss(outputs, labels)
        self.scaler.scale(loss).backward()
        return self.apply_gradients(loss, outputs, labels, buffers)

    def agree_finite(self, finite: bool) -> bool:
        """True when on every rank the step's loss and gradients (`finite`) and the model's buffers, which
        its forward updated, are finite."""
        finite = finite and buffers_finite(self.model)
        return all_reduce_sum([float(not finite)], self.device, self.ctx)[0] == 0

    def apply_gradients(
        self, loss: torch.Tensor, outputs: torch.Tensor, labels: torch.Tensor, buffers: BufferSnapshot | None = None
    ) -> StepResult:
        """Clip, check finiteness (agreed over ranks), step optimizer, schedule and EMA. A skipped step puts
        the `buffers` (snapshot before its forward) back."""
        self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip or math.inf)
        finite = self.agree_finite(
            bool(torch.isfinite(loss)) and (self.cfg.amp == "fp16" or bool(torch.isfinite(norm)))
        )
        if finite:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
        elif buffers is not None:
            restore_buffers(buffers)
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        logits = outputs.logits if isinstance(outputs, AuxiliaryOutputs) else outputs
        correct = int((logits.detach().argmax(1) == labels).sum()) if finite else 0
        return StepResult(float(loss.detach()) if finite else 0.0, correct, len(labels) if finite else 0, not finite)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        del epoch, record

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        rng = [_rng_state()]
        if self.ctx.enabled:
            import torch.distributed as dist

            rng = [None] * self.ctx.world
            dist.all_gather_object(rng, _rng_state())
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng,
            "epoch": self.epoch,
            "phase": self.phase,
            "batch": self.batch,
            "step": self.step,
            "bad_steps": self.bad_steps,
            "sums": {k: list(v) for k, v in self.sums.items()},
            "best": dict(self.best),
            "extra": self.extra_state(),
            **self.meta,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise HwnasError(f"checkpoint does not fit this model and optimizer ({str(exc).splitlines()[0]})") from None
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        _set_rng_state(rng[self.ctx.rank] if len(rng) == self.ctx.world else rng[0])
        self.epoch, self.phase, self.batch, self.step = state["epoch"], state["phase"], state["batch"], state["step"]
        self.bad_steps, self.best = state["bad_steps"], dict(state["best"])
        self.sums = {k: list(v) for k, v in state["sums"].items()}
        self.load_extra_state(state.get("extra", {}))

    def save_checkpoint(self, best: bool = False) -> None:
        """Write a checkpoint on rank 0; a state holding NaN or infinity stops the run instead (every rank)."""
        state = self.state_dict()  # every rank joins the RNG gather; only rank 0 writes
        if self.run is not None:
            rank_zero(self.ctx, lambda: self._write_checkpoint(state, best))

    def _write_checkpoint(self, state: dict[str, Any], best: bool) -> None:
        assert self.run is not None
        if self.log_error is not None:
            raise self.log_error
        bad = first_non_finite(state)
        if bad is not None:
            raise TrainingError(self.diverged(f"{bad} holds NaN or infinity"))
        name = (
            f"epoch_{self.epoch:03d}.pt"
            if self.batch == self.phase == 0
            else f"epoch_{self.epoch:03d}_step_{self.step:07d}.pt"
        )
        self.run.checkpoints.save(state, name, best=best)

    def diverged(self, what: str) -> str:
        """The one line that stops a diverged run: where, what, and which checkpoint is kept."""
        entries = self.run.checkpoints.entries() if self.run is not None else []
        kept = f"the last good checkpoint, {entries[-1]['file']}, is kept" if entries else "no checkpoint was written"
        where = f"end of epoch {self.epoch}" if self.batch == self.phase == 0 else f"epoch {self.epoch + 1}"
        return (
            f"the run diverged ({where}, step {self.step}): {what}; stopped without writing that state, "
            f"{kept}. Lower --lr, set --grad-clip, or check the data"
        )

    # ---- the loop ---------------------------------------------------------------------------
    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Loss, top-1 and top-5 accuracy (%) on the validation set, summed over all ranks."""
        if model is None:
            model = self.ema.module if self.ema is not None else self.model
        return evaluate_model(
            model, self.val_loader, self.preprocess, self.device, self.autocast, self.ctx, self.channels_last
        )

    def _prepare(self, batch, plan) -> torch.Tensor:
        x = self.preprocess(batch, self.device, plan)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def faster_channels_last(self, device: torch.device) -> bool:
        """Whether this step kind measured faster in channels_last on `device` (--channels-last's default). On the
        CPU every kind did (bench/RESULTS.md, issue 26): DNAS soft and hard, DARTS, one-shot uniform, fair and
        sandwich, stand-alone MobileNetV2 and fbnet_cifar networks; CUDA was not measured."""
        return device.type == "cpu"

    def phases(self) -> list[Phase]:
        """What one epoch runs, in order (resumable between and inside phases). Default: train."""
        return [Phase("train", self.train_loader, self.train_step)]

    def fit(self) -> dict[str, Any]:
        """Train to the last epoch from wherever the state is (fresh, or a loaded checkpoint)."""
        while self.epoch < self.cfg.epochs:
            start = time.perf_counter()
            set_drop_path(self.model, self.cfg.drop_path_prob * self.epoch / self.cfg.epochs)
            phases = self.phases()
            while self.phase < len(phases):
                self._run_phase(phases[self.phase], phases)
                self.phase, self.batch = self.phase + 1, 0
            record = self._end_epoch([p.name for p in phases], time.perf_counter() - start)
            self.on_epoch_end(self.epoch - 1, record)
        return self.best

    def _run_phase(self, phase: Phase, phases: list[Phase]) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        self.net.train()
        plan = self.preprocess.plan(len(phase.loader.dataset), cfg.seed + 7919 * self.phase, self.epoch)
        sums = self.sums.setdefault(phase.name, [0.0, 0.0, 0.0])
        start, seen_before = time.perf_counter(), sums[2]
        label = f" {phase.name}" if len(phases) > 1 else ""
        bar = tqdm(
            total=len(phase.loader),
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{cfg.epochs}{label}",
            disable=None if cfg.progress and self.ctx.main else True,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )
        for batch in phase.loader.epoch(self.epoch, start=self.batch):
            result = phase.step(self._prepare(batch, plan), batch.labels.to(self.device))
            self.batch += 1
            self.step += 1
            self._account(result, sums)
            rate = (sums[2] - seen_before) * self.ctx.world / max(time.perf_counter() - start, 1e-9)
            bar.update(1)
            bar.set_postfix(
                loss=f"{result.loss:.3f}",
                acc=f"{100 * sums[1] / max(sums[2], 1):.1f}",
                img_s=f"{rate:.0f}",
                refresh=False,
            )
            if self.step % cfg.log_every == 0:
                self._log(
                    {
                        "kind": phase.name,
                        "step": self.step,
                        "epoch": self.epoch,
                        "loss": result.loss,
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "images_per_s": rate,
                    }
                )
            if cfg.checkpoint_every and self.batch % cfg.checkpoint_every == 0 and self.batch < len(phase.loader):
                self.save_checkpoint()
        bar.close()

    def _account(self, result: StepResult, sums: list[float]) -> None:
        if result.skipped:
            self.bad_steps += 1
            logger.warning(
                f"hwnas: warning: non-finite loss or gradient at step {self.step}; update skipped "
                f"({self.bad_steps} in a row)"
            )
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise TrainingError(
                    self.diverged(f"the loss or gradient was not finite {self.bad_steps} steps in a row")
                )
            return
        self.bad_steps = 0
        sums[0] += result.loss * result.count
        sums[1] += result.correct
        sums[2] += result.count

    def _end_epoch(self, names: list[str], seconds: float) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "epoch", "step": self.step, "epoch": self.epoch + 1}
        for name in dict.fromkeys([*names, *sorted(self.sums)]):  # phases, and what steps counted besides
            loss, correct, n = all_reduce_sum(self.sums.get(name, [0.0, 0.0, 0.0]), self.device, self.ctx)
            record[f"{name}_loss"], record[f"{name}_top1"] = loss / max(n, 1), 100 * correct / max(n, 1)
        record.update({"lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds, **self.evaluate()})
        if not math.isfinite(record["val_loss"]):
            self._log(record)
            self.epoch, self.phase, self.batch = self.epoch + 1, 0, 0
            raise TrainingError(self.diverged(f"the validation loss is {record['val_loss']}"))
        self.epoch, self.phase, self.batch, self.sums = self.epoch + 1, 0, 0, {}
        improved = not self.best or record["val_top1"] > self.best["val_top1"]
        if improved:
            self.best = {k: record[k] for k in ("epoch", "val_top1", "val_top5", "val_loss")}
        record.update(self.epoch_report())
        self._log(record)
        self.history.append(record)
        self.save_checkpoint(best=improved)
        if self.ctx.main:
            trained = " | ".join(f"{n} loss {record[n + '_loss']:.4f} top-1 {record[n + '_top1']:.2f}%" for n in names)
            logger.info(
                f"epoch {record['epoch']}/{self.cfg.epochs}: {trained} | val loss {record['val_loss']:.4f} "
                f"top-1 {record['val_top1']:.2f}% top-5 {record['val_top5']:.2f}% | {record['seconds']:.1f}s"
            )
        return record

    def epoch_report(self) -> dict[str, Any]:
        """Extra numbers for the epoch record (metrics.jsonl, TensorBoard); strategies add theirs."""
        return {}

    def _log(self, record: dict[str, Any]) -> None:
        """Write a record on rank 0; under torchrun a failed write stops the run at the next checkpoint,
        where every rank learns of it."""
        if self.run is None or not self.ctx.main or self.log_error is not None:
            return
        try:
            self.run.log(record)
        except HwnasError as exc:
            if not self.ctx.enabled:
                raise
            self.log_error = exc
