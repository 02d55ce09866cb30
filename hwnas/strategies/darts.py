"""DARTS on the one Trainer: each step updates α on a batch of the architecture split, then the weights.

The weights train with SGD on their split under the run's cosine schedule; α (and β under
edge normalisation) with Adam on the other split, first order by default or through one
unrolled weight step (`--sec-approx`). With `--cost`, α's loss adds λ times the evaluation
network's expected cost; with `--beta-decay`, β-DARTS's regulariser of α, its weight rising
linearly from 0 over the search. Under `--mode dirichlet` (DrNAS) every step mixes the ops by
a fresh draw from the Dirichlet of α, and α's loss adds DrNAS's anchor to the uniform Dirichlet.
α's gradient is averaged over DDP ranks and every rank starts from the same seeded α, so every
rank holds the same α and derives the same genotype.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..cost.cell_cost import CellCostModel
from ..cost.hardware_loss import HardwareLoss
from ..data import ImageSet
from ..engine.buffers import restore_buffers, snapshot_buffers
from ..engine.distributed import all_reduce_sum
from ..engine.trainer import Phase, StepResult, Trainer
from ..errors import HwnasError
from ..log import warn_user
from ..spaces import Genotype
from ..spaces.genotype import random_genotype
from ..supernet.cell_supernet import FIXED_MODES, CellArchParams, CellSupernet, CellWeights
from .architect import Architect
from .cell_selection import TUNE_STEPS, best_sampled, genotype_mixture, select_genotype
from .config import DartsConfig
from .derive import SKIP, derive_genotype

SCORING_BATCHES = 4  # batches of α's split that score a DARTS-PT perturbation or an RSPS genotype

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
        # RSPS's genotypes and DARTS-PT's decided edges run only their ops: the others sit out those steps
        self.find_unused_parameters = cfg.mode == "random" or cfg.select != "alpha"
        super().__init__(supernet, cfg, train_set=weight_set, **options)
        self.supernet = supernet
        self.arch = CellArchParams(supernet.space, edge_norm=cfg.partial_channels > 1, mode=cfg.mode).to(self.device)
        self.initial_arch = [p.detach().clone() for p in self.arch.parameters()]  # seeded: the same when resumed
        expected = (lambda: cost.expected(self.arch.op_probs(), self.arch.edge_probs())) if cost is not None else None
        terms = [self.beta_decay] if cfg.beta_decay > 0 else []
        terms += [self.arch.dirichlet_anchor] if cfg.mode == "dirichlet" else []
        regularizer = (lambda: sum(term() for term in terms)) if terms else None
        self.architect = Architect(self.arch, cfg, self.ctx, self.agree_finite, expected, hardware_loss, regularizer)
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
            weights = self.step_mixture()
        return self.net(images, weights)

    def step_mixture(self) -> CellWeights:
        """The mixture a step trains: α's (a fresh Dirichlet draw under `dirichlet`), or under `random` one
        genotype drawn from the seed and the step (every rank draws the same; a resumed run what it would have)."""
        if self.cfg.mode != "random":
            return self.arch.weights()
        space = self.supernet.space
        rng = random.Random(self.cfg.seed * 1_000_003 + self.step)
        genotype = random_genotype(space.ops, space.nodes, rng, self.cfg.use_sparse, space.shared_cells)
        return genotype_mixture(genotype, space.ops, space.nodes, self.arch.mean_weights())

    def search_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        if self.epoch >= self.cfg.weight_warmup_epochs and self.cfg.mode not in FIXED_MODES:
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

    def beta_decay(self) -> torch.Tensor:
        """β-DARTS's Beta-Decay term at its weight now: `--beta-decay` times the share of the search done."""
        done = (self.epoch + self.batch / max(1, len(self.train_loader))) / self.cfg.epochs
        return self.cfg.beta_decay * done * self.arch.beta_decay()

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
        """The genotype of α as it stands (DARTS's derivation)."""
        space = self.supernet.space
        return derive_genotype(
            self.arch.strengths(),
            space.ops,
            space.nodes,
            sparse=self.cfg.use_sparse,
            max_skip=self.cfg.max_skip,
            shared=space.shared_cells,
        )

    def final_genotype(self) -> Genotype:
        """The search's answer: α's genotype, DARTS-PT's selection (`--select perturbation`, which tunes the
        search network's weights as it goes), or RSPS's best sampled genotype (`--select sampled`)."""
        if self.cfg.select == "alpha":
            return self.genotype()
        cfg, space, held = self.cfg, self.supernet.space, self.held_batches()

        def score(weights: CellWeights) -> tuple[float, float]:
            return self.score(weights, held)

        mean = self.arch.mean_weights()
        if cfg.select == "sampled":
            rng = random.Random(cfg.seed)
            shared = space.shared_cells
            draws = [
                random_genotype(space.ops, space.nodes, rng, cfg.use_sparse, shared)
                for _ in range(cfg.sampled_genotypes)
            ]
            return best_sampled(draws, space.ops, space.nodes, mean, score)
        training = self.tuning_batches()

        def tune(weights: CellWeights) -> None:
            self.tune(weights, training)

        return select_genotype(
            mean, space.ops, space.nodes, score, tune, cfg.seed, sparse=cfg.use_sparse, shared=space.shared_cells
        )

    def held_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`SCORING_BATCHES` batches of α's split, unaugmented: what scores each perturbation or sampled genotype."""
        batches = self.arch_loader.epoch(self.cfg.epochs)
        return [
            (self._prepare(batch, None), batch.labels.to(self.device))
            for batch, _ in zip(batches, range(SCORING_BATCHES), strict=False)
        ]

    def tuning_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Augmented batches of the weights' split, epoch after epoch past the search's last."""
        epoch = self.cfg.epochs
        while True:
            plan = self.preprocess.plan(len(self.train_loader.dataset), self.cfg.seed, epoch)
            for batch in self.train_loader.epoch(epoch):
                yield self._prepare(batch, plan), batch.labels.to(self.device)
            epoch += 1

    def score(self, weights: CellWeights, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
        """(top-1, -loss) of the search network mixed by `weights` on `batches`, summed over ranks; BatchNorm on
        batch statistics, its running ones left as they were."""
        buffers = snapshot_buffers(self.model)
        self.model.train()
        correct = loss = count = 0.0
        with torch.no_grad(), self.autocast():
            for images, labels in batches:
                logits = self.model(images, weights).float()
                correct += float((logits.argmax(1) == labels).sum())
                loss += float(F.cross_entropy(logits, labels, reduction="sum"))
                count += len(labels)
        restore_buffers(buffers)
        correct, loss, count = all_reduce_sum([correct, loss, count], self.device, self.ctx)
        return correct / max(count, 1), -loss / max(count, 1)

    def tune(self, weights: CellWeights, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """`TUNE_STEPS` weight steps of the search network mixed by `weights`, at the schedule's last rate."""
        self.model.train()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for _ in range(TUNE_STEPS):
            images, labels = next(batches)
            with self.autocast():
                loss = self.loss(self.net(images, weights), labels)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip or math.inf)
            if self.agree_finite(bool(torch.isfinite(loss)) and bool(torch.isfinite(norm))):
                self.scaler.step(self.optimizer)
                self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)

    def evaluate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Validation of the search network mixed by the current α."""
        if model is None:
            with torch.no_grad():
                model = WithArchWeights(self.supernet, self.arch.mean_weights())
        return super().evaluate(model)

    def epoch_report(self) -> dict[str, Any]:
        """α's genotype, entropy and cost after an epoch; nothing under a fixed α (`--mode uniform`, `random`),
        whose genotype is only picked at the end."""
        if self.cfg.mode in FIXED_MODES:
            return {}
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
        if "genotype" not in record:  # a fixed α: no genotype until the selection at the end
            return
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
