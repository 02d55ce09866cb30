"""DNAS (FBNet): w and θ trained in turns on two splits of the training data, on the one Trainer.

Each epoch after `weight_warmup_epochs` runs two phases: the weights on their split (SGD,
the run's schedule), then θ on the other split (Adam, lr 0.01, weight decay 5e-4), with the
loss `hardware_loss(CE, Σ_l softmax(θ_l) · cost_l)`. The weight phase uses plain CE.
Gumbel noise (and the hard-sampled path) is seeded by the step number, and θ's gradient is
averaged over DDP ranks, so every rank holds the same θ and samples the same paths.

With `--mode gumbel_hard` one path runs per step, and the CE term reaches θ by the score function
(REINFORCE, as ProxylessNAS does for its gates): (CE - b) · ∇ log p(path), with b a moving average of
the CE. The straight-through gradient of a hard sample only says whether scaling the sampled op's
output up would lower the loss; it never compares the op with the others, so θ followed the cost term
alone (on the ground truth of bench/search_quality.py it returned the same cheap network every seed).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.distributed as dist

from ..cost.hardware_loss import CostModel, HardwareLoss
from ..data import ImageSet, Preprocess
from ..supernet import FixedPath, Supernet
from ..supernet.choice import Choice
from ..supernet.mixing import ArchParams, temperature_at
from ..train.distributed import Dist, all_reduce_sum
from ..train.rundir import RunDir
from ..train.trainer import Phase, StepResult, Trainer, restore_buffers, snapshot_buffers
from .config import SearchConfig

BASELINE_DECAY = 0.9  # the CE baseline of the score-function gradient: b ← 0.9·b + 0.1·CE


class DNASTrainer(Trainer):
    def __init__(
        self,
        supernet: Supernet,
        cfg: SearchConfig,
        *,
        weight_set: ImageSet,
        theta_set: ImageSet,
        val_set: ImageSet,
        preprocess: Preprocess,
        device: torch.device,
        costs: dict[str, CostModel],
        hardware_loss: HardwareLoss,
        run: RunDir | None = None,
        ctx: Dist | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.find_unused_parameters = cfg.mode == "gumbel_hard"
        super().__init__(
            supernet,
            cfg,
            train_set=weight_set,
            val_set=val_set,
            preprocess=preprocess,
            device=device,
            run=run,
            ctx=ctx,
            meta=meta,
        )
        self.supernet = supernet
        self.theta = ArchParams(supernet).to(device)
        if cfg.a_optimizer == "adam":
            self.theta_optimizer = torch.optim.Adam(
                self.theta.parameters(), lr=cfg.a_lr, betas=(cfg.a_momentum, 0.999), weight_decay=cfg.a_weight_decay
            )
        else:
            self.theta_optimizer = torch.optim.SGD(
                self.theta.parameters(), lr=cfg.a_lr, momentum=cfg.a_momentum, weight_decay=cfg.a_weight_decay
            )
        # θ takes a step per weight step (cycling its smaller split, as DARTS pairs its steps): FBNet's one pass
        # over 20% of ImageNet is thousands of steps, one pass over 20% of a small dataset only a handful
        self.theta_loader = self.split_loader(theta_set, cfg.seed + 1, steps=self.steps_per_epoch)
        self.costs = costs
        self.cost = costs[cfg.cost]
        self.hardware_loss = hardware_loss
        self.theta_updates = 0  # steps that changed θ (none: the θ split was too small, or every step was skipped)
        self.ce_baseline: float | None = None  # gumbel_hard: moving average of the θ steps' CE

    @property
    def temperature(self) -> float:
        return self.temperature_of(self.epoch)

    def temperature_of(self, epoch: int) -> float:
        return temperature_at(epoch, self.cfg.temperature, self.cfg.temperature_decay, self.cfg.epochs)

    def path(self, grad: bool) -> list[Choice]:
        """This step's per-layer choices; the noise seed is the step, identical on every rank."""
        with torch.set_grad_enabled(grad):
            return self.theta.choices(self.cfg.mode, self.temperature, self.cfg.seed * 1_000_003 + self.step)

    def phases(self) -> list[Phase]:
        phases = [Phase("train", self.train_loader, self.train_step)]
        if self.epoch >= self.cfg.weight_warmup_epochs:
            phases.append(Phase("arch", self.theta_loader, self.theta_step))
        return phases

    def evaluate(self, model: torch.nn.Module | None = None) -> dict[str, float]:
        """Validation of the supernet as it trains: candidates mixed by softmax(θ / τ), without noise."""
        if model is None:
            with torch.no_grad():
                weights = [torch.softmax(t / self.temperature, -1) for t in self.theta.logits]
            model = FixedPath(self.supernet, weights)
        return super().evaluate(model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images, self.path(grad=False))

    def theta_step(self, images: torch.Tensor, labels: torch.Tensor) -> StepResult:
        """One update of θ on the hardware-aware loss; the weights' gradients are discarded. A skipped step
        puts back what its forward changed (BatchNorm statistics, the CE baseline)."""
        buffers, baseline = snapshot_buffers(self.model), self.ce_baseline
        quiet = self.net.no_sync() if self.ctx.enabled else contextlib.nullcontext()
        with quiet:
            if self.cfg.mode == "gumbel_hard":
                outputs, ce = self.sampled_path_ce(images, labels)
            else:
                with self.autocast():
                    outputs = self.net(images, self.path(grad=True))
                    ce = self.loss(outputs, labels)
            loss = self.hardware_loss(ce, self.cost.expected(self.theta.probs()))
            loss.backward()
        grads = [p.grad for p in self.theta.parameters()]
        if self.ctx.enabled:
            for g in grads:
                dist.all_reduce(g)
                g.div_(self.ctx.world)
        finite = self.agree_finite(bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads))
        if finite:
            self.theta_optimizer.step()
            self.theta_updates += 1
        else:
            restore_buffers(buffers)
            self.ce_baseline = baseline
        self.theta_optimizer.zero_grad(set_to_none=True)
        self.optimizer.zero_grad(set_to_none=True)
        correct = int((outputs.detach().argmax(1) == labels).sum()) if finite else 0
        return StepResult(float(ce.detach()) if finite else 0.0, correct, len(labels) if finite else 0, not finite)

    def sampled_path_ce(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs and CE of this step's sampled path, the CE carrying the score-function gradient to θ:
        its value is the CE, its gradient (CE - b) · ∇ log p(path). The path runs without autograd."""
        indices = [index for index, _ in self.path(grad=False)]
        with torch.no_grad(), self.autocast():
            outputs = self.net(images, indices)
            ce = self.loss(outputs, labels).float()
        mean_ce = all_reduce_sum([float(ce)], self.device, self.ctx)[0] / self.ctx.world
        baseline = mean_ce if self.ce_baseline is None else self.ce_baseline
        if math.isfinite(mean_ce):
            self.ce_baseline = BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * mean_ce
        log_p = sum(torch.log_softmax(t, -1)[k] for t, k in zip(self.theta.logits, indices, strict=True))
        return outputs, ce + (ce - baseline) * (log_p - log_p.detach())

    def expected_costs(self) -> dict[str, float]:
        with torch.no_grad():
            probs = self.theta.probs()
            return {name: float(model.expected(probs)) for name, model in self.costs.items()}

    def epoch_report(self) -> dict[str, Any]:
        probs = [p.detach().cpu().tolist() for p in self.theta.probs()]
        entropy = self.theta.entropy()
        return {
            "temperature": self.temperature_of(self.epoch - 1),
            "theta_entropy": sum(entropy) / len(entropy),
            **{f"expected_{k}": v for k, v in self.expected_costs().items()},
            "argmax": self.theta.argmax(),
            "theta": probs,
        }

    def extra_state(self) -> dict[str, Any]:
        return {
            "theta": self.theta.state_dict(),
            "theta_optimizer": self.theta_optimizer.state_dict(),
            "theta_updates": self.theta_updates,
            "ce_baseline": self.ce_baseline,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.theta.load_state_dict(state["theta"])
        self.theta_optimizer.load_state_dict(state["theta_optimizer"])
        self.theta_updates = int(state.get("theta_updates", 0))
        self.ce_baseline = state.get("ce_baseline")
