"""DNAS (FBNet): w and θ trained in turns on two splits of the training data, on the one Trainer.

Each epoch after `weight_warmup_epochs` runs two phases: the weights on their split (SGD,
the run's schedule), then θ on the other split (`--arch-optimizer`, Adam by default), with the
loss `hardware_loss(CE, Σ_l softmax(θ_l) · cost_l)`. The weight phase uses plain CE.
Gumbel noise (and the hard-sampled path) is seeded by the step number, and θ's gradient is
averaged over DDP ranks, so every rank holds the same θ and samples the same paths. The `Architect`
owns θ, its optimizer and its step; with `--mode gumbel_hard` one path runs per step and the CE
reaches θ by its score-function estimator.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..cost.cost_model import CostModel
from ..cost.hardware_loss import HardwareLoss
from ..data import ImageSet
from ..engine.buffers import restore_buffers, snapshot_buffers
from ..engine.trainer import Phase, StepResult, Trainer
from ..supernet import FixedPath, Supernet
from ..supernet.choice import Choice
from ..supernet.mixing import ArchParams, Mixing, temperature_at
from .architect import Architect
from .config import DnasConfig


class DNASTrainer(Trainer):
    def __init__(
        self,
        supernet: Supernet,
        cfg: DnasConfig,
        *,
        weight_set: ImageSet,
        theta_set: ImageSet,
        costs: dict[str, CostModel],
        hardware_loss: HardwareLoss,
        **options: Any,
    ) -> None:
        """`options`: the Trainer's own keywords (val_set, preprocess, device, run, ctx, meta)."""
        self.mode = Mixing.parse(cfg.mode)
        self.find_unused_parameters = not self.mode.soft
        super().__init__(supernet, cfg, train_set=weight_set, **options)
        self.supernet = supernet
        self.theta = ArchParams(supernet).to(self.device)
        # θ takes a step per weight step (cycling its smaller split, as DARTS pairs its steps): FBNet's one pass
        # over 20% of ImageNet is thousands of steps, one pass over 20% of a small dataset only a handful
        self.theta_loader = self.split_loader(theta_set, cfg.seed + 1, steps=self.steps_per_epoch)
        self.costs = costs
        self.cost = costs[cfg.cost]
        self.architect = Architect(
            self.theta,
            cfg,
            self.ctx,
            self.agree_finite,
            lambda: self.cost.expected(self.theta.probs()),
            hardware_loss,
        )

    @property
    def theta_updates(self) -> int:
        """Steps that changed θ (none: the θ split was too small, or every step was skipped)."""
        return self.architect.updates

    @property
    def temperature(self) -> float:
        return self.temperature_of(self.epoch)

    def temperature_of(self, epoch: int) -> float:
        return temperature_at(epoch, self.cfg.temperature, self.cfg.temperature_decay, self.cfg.epochs)

    def path(self, grad: bool) -> list[Choice]:
        """This step's per-layer choices; the noise seed is the step, identical on every rank."""
        with torch.set_grad_enabled(grad):
            return self.theta.choices(self.mode, self.temperature, self.cfg.seed * 1_000_003 + self.step)

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
        buffers, baseline = snapshot_buffers(self.model), self.architect.ce_baseline
        quiet = self.net.no_sync() if self.ctx.enabled else contextlib.nullcontext()
        with quiet:
            if self.mode.soft:
                with self.autocast():
                    outputs = self.net(images, self.path(grad=True))
                    ce = self.loss(outputs, labels)
            else:
                outputs, ce = self.sampled_path_ce(images, labels)
            loss = self.architect.loss(ce)
            loss.backward()
        finite = self.architect.step(loss, [p.grad for p in self.theta.parameters()])
        if not finite:
            restore_buffers(buffers)
            self.architect.ce_baseline = baseline
        self.optimizer.zero_grad(set_to_none=True)
        correct = int((outputs.detach().argmax(1) == labels).sum()) if finite else 0
        return StepResult(float(ce.detach()) if finite else 0.0, correct, len(labels) if finite else 0, not finite)

    def sampled_path_ce(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs and CE of this step's sampled path, the CE carrying the score-function gradient to θ:
        its value is the CE, its gradient the score function's (`Architect.score_function`). The path runs
        without autograd."""
        indices = [index for index, _ in self.path(grad=False)]
        with torch.no_grad(), self.autocast():
            outputs = self.net(images, indices)
            ce = self.loss(outputs, labels).float()
        log_p = sum(torch.log_softmax(t, -1)[k] for t, k in zip(self.theta.logits, indices, strict=True))
        return outputs, self.architect.score_function(ce, log_p, self.device)

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
        return {"theta": self.architect.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.architect.load_state_dict(state["theta"])
