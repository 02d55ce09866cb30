"""DARTS on the one Trainer: each step updates α on a batch of the architecture split, then the weights.

The weights train with SGD on their split under the run's cosine schedule; α (and β under
edge normalisation) with Adam on the other split, first order by default or through one
unrolled weight step (`--sec-approx`). With `--cost`, α's loss adds λ times the evaluation
network's expected cost. α's gradient is averaged over DDP ranks and every rank starts from
the same seeded α, so every rank holds the same α and derives the same genotype.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..cost.cell_cost import CellCostModel
from ..cost.hardware_loss import HardwareLoss
from ..data import ImageSet
from ..engine.buffers import restore_buffers, snapshot_buffers
from ..engine.trainer import Phase, StepResult, Trainer
from ..errors import HwnasError
from ..log import warn_user
from ..spaces import Genotype
from ..supernet.cell_supernet import CellArchParams, CellSupernet, CellWeights
from .architect import Architect
from .config import DartsConfig
from .derive import SKIP, derive_genotype

logger = logging.getLogger(__name__)


class WithArchWeights(nn.Module):
    """The search network with fixed mixing weights, evaluated like a plain model."""

    def __init__(self, supernet: CellSupernet, weights: CellWeights) -> None:
        super().__init__()
        self.supernet, self.weights = supernet, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.weights)


class DartsTrainer(Trainer):
    def __init__(
        self,
        supernet: CellSupernet,
        cfg: DartsConfig,
        *,
        weight_set: ImageSet,
        arch_set: ImageSet,
        cost: CellCostModel | None = None,
        hardware_loss: HardwareLoss | None = None,
        on_genotype: Callable[[int, Genotype, dict[str, Any]], None] | None = None,
        **options: Any,
    ) -> None:
        """`options`: the Trainer's own keywords (val_set, preprocess, device, run, ctx, meta)."""
        super().__init__(supernet, cfg, train_set=weight_set, **options)
        self.supernet = supernet
        self.arch = CellArchParams(supernet.space, edge_norm=cfg.partial_channels > 1).to(self.device)
        self.initial_arch = [p.detach().clone() for p in self.arch.parameters()]  # seeded: the same when resumed
        expected = (lambda: cost.expected(self.arch.op_probs(), self.arch.edge_probs())) if cost is not None else None
        self.architect = Architect(self.arch, cfg, self.ctx, self.agree_finite, expected, hardware_loss)
        self.arch_loader = self.split_loader(arch_set, cfg.seed + 1)
        if len(self.arch_loader) == 0:
            raise HwnasError(f"--batch-size {cfg.batch_size} is larger than the {len(arch_set)} images of α's split")
        self.cost, self.on_genotype = cost, on_genotype
        self._arch_batches: Any = None
        self._arch_next = (-1, -1)  # (epoch, batch index) the open iterator yields next

    # ---- one step: α, then w ----------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("search", self.train_loader, self.search_step)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            weights = self.arch.weights()
        return self.net(images, weights)

    def search_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        if self.epoch >= self.cfg.weight_warmup_epochs:
            self.arch_step(*self._arch_batch(), images, labels)
        return self.train_step(images, labels)

    def _arch_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `self.batch` (cycled) of α's split for this epoch, augmented with its own per-epoch plan."""
        index = self.batch % len(self.arch_loader)
        if self._arch_next != (self.epoch, index):
            self._arch_batches = iter(self.arch_loader.epoch(self.epoch, start=index))
            self._arch_plan = self.preprocess.plan(len(self.arch_loader.dataset), self.cfg.seed + 104_729, self.epoch)
        batch = next(self._arch_batches)
        self._arch_next = (self.epoch, index + 1)
        return self._prepare(batch, self._arch_plan), batch.labels.to(self.device)

    def arch_loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), labels)

    def arch_step(
        self, arch_images: torch.Tensor, arch_labels: torch.Tensor, images: torch.Tensor, labels: torch.Tensor
    ) -> None:
        """α's step (first or second order, `Architect`) on a batch of α's split; the weights stay as they are."""
        buffers = snapshot_buffers(self.model)
        with self.autocast():
            if self.cfg.sec_approx:
                ce, grads, outputs = self.architect.second_order(
                    self.model,
                    lambda x: (x, self.arch.weights()),
                    self.arch_loss,
                    (images, labels),
                    (arch_images, arch_labels),
                    self.optimizer,
                    self.cfg,
                )
            else:
                outputs = self.model(arch_images, self.arch.weights())
                ce = self.arch_loss(outputs, arch_labels)
        grads = self.architect.with_penalty(grads) if self.cfg.sec_approx else self.architect.first_order(ce)[1]
        if self.architect.step(ce, grads):
            sums = self.sums.setdefault("arch", [0.0, 0.0, 0.0])
            sums[0] += float(ce.detach()) * len(arch_labels)
            sums[1] += int((outputs.argmax(1) == arch_labels).sum())
            sums[2] += len(arch_labels)
        else:
            restore_buffers(buffers)

    # ---- what comes out -----------------------------------------------------------------------
    def genotype(self) -> Genotype:
        space = self.supernet.space
        return derive_genotype(
            self.arch.strengths(), space.ops, space.nodes, sparse=self.cfg.use_sparse, max_skip=self.cfg.max_skip
        )

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Validation of the search network mixed by the current α."""
        if model is None:
            with torch.no_grad():
                model = WithArchWeights(self.supernet, self.arch.weights())
        return super().evaluate(model)

    def epoch_report(self) -> dict[str, Any]:
        genotype = self.genotype()
        entropy = self.arch.entropy()
        report: dict[str, Any] = {
            "genotype": genotype.to_dict(),
            "skip_normal": genotype.count(SKIP, "normal"),
            "skip_reduce": genotype.count(SKIP, "reduce"),
            **{f"alpha_entropy_{t}": sum(v) / len(v) for t, v in entropy.items()},
            "edge_entropy": entropy,
            "alpha": {t: p.tolist() for t, p in self.arch.strengths().items()},
        }
        if self.cost is not None:
            with torch.no_grad():
                expected = float(self.cost.expected(self.arch.op_probs(), self.arch.edge_probs()))
            report[f"expected_{self.cost.metric}"] = expected
            report[f"genotype_{self.cost.metric}"] = self.cost.of(genotype)
        return report

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        genotype = Genotype.from_dict(record["genotype"], self.supernet.space.ops)
        if self.ctx.main:
            skips = record["skip_normal"]
            logger.info(
                f"  genotype: {genotype.describe()}\n  α entropy normal {record['alpha_entropy_normal']:.3f} "
                f"reduce {record['alpha_entropy_reduce']:.3f} nats; skip_connect in the normal cell: {skips}"
            )
            if skips > 2:
                warn_user(
                    f"the normal cell has {skips} skip_connect: DARTS drifting to parameter-free ops "
                    f"(skip collapse). Consider --max-skip 2 (P-DARTS), fewer epochs, or --partial-channels 4"
                )
        if self.on_genotype is not None:
            self.on_genotype(epoch, genotype, record)

    def extra_state(self) -> dict[str, Any]:
        return {"arch": self.architect.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.architect.load_state_dict(state["arch"])
