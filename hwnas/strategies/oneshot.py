"""Single-path one-shot supernet training (SPOS uniform sampling, FairNAS strict fairness, the BigNAS/OFA
sandwich rule) on the Trainer.

Each step draws its path(s) from a generator seeded by the step, so every DDP rank trains the
same paths and a resumed run draws what the uninterrupted one would have. `fair` runs m paths
(m = the most candidates of any layer) that use every candidate of every such layer once,
accumulates their gradients (summed, as FairNAS does) and updates once. `sandwich` runs the largest
path (the candidate of most parameters in every layer) on the labels, then the smallest and
`SANDWICH_RANDOM` random paths on the largest's predictions (in-place distillation: a soft cross-entropy
to its detached softmax), and updates once.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import torch

from ..data import EpochLoader
from ..engine.buffers import snapshot_buffers
from ..engine.storage import writing
from ..engine.trainer import StepResult, Trainer, TrainingError, first_non_finite
from ..model import save_weights
from ..supernet import Supernet
from .config import SupernetConfig
from .constraints import Constraints
from .evaluate import path_network
from .paths import PathIndices, fair_paths, uniform_path, within_limits

SANDWICH_RANDOM = 2  # random paths between the largest and the smallest (BigNAS: 2)
MIN_EPOCHS = 10
MIN_STEPS = 1000  # on the bundled digits (20 steps an epoch), 10 epochs left every path near chance
VALIDATION_RECALIBRATION_BATCHES = 10  # as the searches' default --recalibrate-batches


def default_epochs(images: int, batch_size: int) -> int:
    """Supernet epochs when none are asked for: 10, or as many as make `MIN_STEPS` steps on small data."""
    steps_per_epoch = max(1, images // batch_size)
    return max(MIN_EPOCHS, -(-MIN_STEPS // steps_per_epoch))


class OneShotTrainer(Trainer):
    find_unused_parameters = True

    def __init__(
        self, supernet: Supernet, cfg: SupernetConfig, *, constraints: Constraints | None = None, **options: Any
    ) -> None:
        """`options`: the Trainer's own keywords (train_set, val_set, preprocess, device, run, ctx, meta);
        `cfg.epochs` None: `default_epochs` for the training set."""
        if cfg.epochs is None:
            cfg = cfg.replace(epochs=default_epochs(len(options["train_set"]), cfg.batch_size))
        super().__init__(supernet, cfg, **options)
        self.supernet = supernet
        self.counts = [len(layer.ops) for layer in supernet.layers]
        self.constraints = constraints if constraints is not None and constraints.limits else None
        self.trained = [[0] * n for n in self.counts]  # how often each candidate was trained
        sizes = [[sum(p.numel() for p in op.parameters()) for op in layer.candidates] for layer in supernet.layers]
        self.largest = [max(range(len(row)), key=lambda i, row=row: (row[i], -i)) for row in sizes]
        self.smallest = [min(range(len(row)), key=lambda i, row=row: (row[i], i)) for row in sizes]

    def paths(self) -> list[PathIndices]:
        """This step's paths: one uniform path (within the limits), FairNAS's m fair paths, or the sandwich:
        the largest, the smallest and `SANDWICH_RANDOM` uniform ones."""
        rng = random.Random(self.cfg.seed * 1_000_003 + self.step)
        if self.cfg.sampling == "fair":
            return fair_paths(self.counts, rng)
        if self.cfg.sampling == "sandwich":
            return [self.largest, self.smallest, *(uniform_path(self.counts, rng) for _ in range(SANDWICH_RANDOM))]
        if self.constraints is None:
            return [uniform_path(self.counts, rng)]
        return [within_limits(lambda: uniform_path(self.counts, rng), self.constraints.fits)]

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        paths = self.paths()
        buffers = snapshot_buffers(self.model)
        losses, teacher = [], None
        for k, path in enumerate(paths):
            last = k == len(paths) - 1
            quiet = self.net.no_sync() if self.ctx.enabled and not last else contextlib.nullcontext()
            with quiet:
                with self.autocast():
                    outputs = self.net(images, path)
                    if teacher is None or not isinstance(outputs, torch.Tensor):
                        loss = self.loss(outputs, labels)
                    else:  # in-place distillation from the largest path
                        loss = -(teacher * torch.log_softmax(outputs.float(), 1)).sum(1).mean()
                if self.cfg.sampling == "sandwich" and k == 0 and isinstance(outputs, torch.Tensor):
                    teacher = torch.softmax(outputs.detach().float(), 1)
                self.scaler.scale(loss).backward()
            losses.append(loss.detach())
        result = self.apply_gradients(torch.stack(losses).mean(), outputs, labels, buffers)
        if not result.skipped:
            for path in paths:
                for layer, index in enumerate(path):
                    self.trained[layer][index] += 1
        return result

    def reference_path(self) -> PathIndices:
        """The path validated each epoch: drawn once from the seed (within the limits)."""
        rng = random.Random(self.cfg.seed)
        if self.constraints is None:
            return uniform_path(self.counts, rng)
        return within_limits(lambda: uniform_path(self.counts, rng), self.constraints.fits)

    def evaluate(self, model: torch.nn.Module | None = None) -> dict[str, float]:
        """The reference path scored as the searches score paths: taken out of the supernet, its BatchNorm
        statistics re-estimated on training batches (the supernet's own running statistics mix every path and
        understate any one of them)."""
        if model is not None:
            return super().evaluate(model)
        loader = EpochLoader(self.train_loader.dataset, self.cfg.batch_size, train=True, seed=self.cfg.seed + 2)
        path = self.reference_path()
        network = path_network(
            self.supernet, path, loader, self.preprocess, self.device, VALIDATION_RECALIBRATION_BATCHES
        )
        return super().evaluate(network)

    def extra_state(self) -> dict[str, Any]:
        return {"trained": [list(row) for row in self.trained]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.trained = [list(row) for row in state["trained"]]

    def save_supernet(self, path: Path, extra: dict[str, Any]) -> None:
        """`path` (supernet.pt): the supernet's weights and `extra`, with a sha256 sidecar; refused if any
        tensor holds NaN or infinity."""
        state = {"model": self.supernet.state_dict(), **extra}
        bad = first_non_finite(state)
        if bad is not None:
            raise TrainingError(f"not writing {path}: {bad} holds NaN or infinity; the run diverged")
        hint = f"; the checkpoints are kept: free space, then --resume {path.parent}"
        with writing(path, hint):
            save_weights(state, path)
