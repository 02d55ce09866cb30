"""`Architect`: the one owner of a run's architecture parameters (θ of DNAS, α of DARTS), as in DARTS.

It holds the parameters and the optimizer it builds for them from the run's `ArchitectureOptions`, prices their
current distribution with the cost model under the hardware loss, adds a strategy's regulariser of the parameters
(β-DARTS's Beta-Decay), gives their gradient by one of three estimators, and takes the step:

- `first_order`: the gradient of the architecture loss on the architecture split (DARTS's first order; DNAS's
  soft Gumbel-softmax mixture takes the same gradient through the backward of its DDP-wrapped network);
- `score_function`: for a hard-sampled path, (CE − b) · ∇ log p(path) with b a moving average of the CE
  (REINFORCE, as ProxylessNAS does for its gates): the straight-through gradient of a hard sample only says
  whether scaling the sampled op's output up lowers the loss, never how it compares with the other candidates;
- `second_order`: DARTS's unrolled gradient through one virtual weight step (`unrolled.py`).

The step averages the gradient over DDP ranks (so every rank holds the same θ/α and derives the same
architecture) and is refused on every rank when the loss or any gradient is not finite on any rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..cost.hardware_loss import HardwareLoss
from ..engine.distributed import Dist, all_reduce_sum
from ..errors import HwnasError
from .unrolled import momentum_buffers, unrolled_arch_gradient

BASELINE_DECAY = 0.9  # the CE baseline of the score-function gradient: b ← 0.9·b + 0.1·CE
Gradients = list[torch.Tensor | None]


def check_warmup(cfg: Any) -> None:
    """Refuse, before any work, a run whose weight warm-up lasts all its epochs: the architecture parameters would
    never train, and the architecture derived would be their initial (uniform) one."""
    if cfg.weight_warmup_epochs >= cfg.epochs:
        raise HwnasError(
            f"--weight-warmup-epochs {cfg.weight_warmup_epochs} with --epochs {cfg.epochs}: the architecture "
            "parameters would never train; expected fewer warm-up epochs than epochs"
        )


def arch_optimizer(params: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """Adam (betas `arch_momentum`, 0.999) or SGD (momentum `arch_momentum`) over `params`, at `arch_lr` with
    `arch_weight_decay`; a strategy without `arch_optimizer` (DARTS) uses Adam."""
    options = {"lr": cfg.arch_lr, "weight_decay": cfg.arch_weight_decay}
    if getattr(cfg, "arch_optimizer", "adam") == "adam":
        return torch.optim.Adam(params.parameters(), betas=(cfg.arch_momentum, 0.999), **options)
    return torch.optim.SGD(params.parameters(), momentum=cfg.arch_momentum, **options)


class Architect:
    """`params`: the module of architecture parameters; `cfg`: the run's options (`ArchitectureOptions`);
    `expected_cost()`: the differentiable expected cost of their current distribution (None: no hardware term);
    `agree_finite`: the trainer's vote of all ranks on whether a step is finite; `regularizer()`: a term added to
    the architecture loss (None: none)."""

    def __init__(
        self,
        params: nn.Module,
        cfg: Any,
        ctx: Dist,
        agree_finite: Callable[[bool], bool],
        expected_cost: Callable[[], torch.Tensor] | None = None,
        hardware_loss: HardwareLoss | None = None,
        regularizer: Callable[[], torch.Tensor] | None = None,
    ) -> None:
        self.params, self.ctx = params, ctx
        self.regularizer = regularizer
        self.optimizer = arch_optimizer(params, cfg)
        self.agree_finite = agree_finite
        self.expected_cost = expected_cost if hardware_loss is not None else None
        self.hardware_loss = hardware_loss
        self.updates = 0  # steps that changed the parameters
        self.ce_baseline: float | None = None  # score function: moving average of the CE

    def loss(self, ce: torch.Tensor) -> torch.Tensor:
        """The architecture loss: the hardware loss of `ce` and the expected cost (just `ce` without one), plus
        the regulariser."""
        loss = ce
        if self.expected_cost is not None and self.hardware_loss is not None:
            loss = self.hardware_loss(ce, self.expected_cost())
        return loss if self.regularizer is None else loss + self.regularizer()

    def penalty(self) -> torch.Tensor | None:
        """λ · penalty(expected cost) plus the regulariser, for additive losses whose CE gradient comes from
        elsewhere; None when there is neither."""
        terms = [] if self.regularizer is None else [self.regularizer()]
        if self.expected_cost is not None and self.hardware_loss is not None:
            terms.append(self.hardware_loss.weight * self.hardware_loss.penalty(self.expected_cost()))
        return sum(terms[1:], terms[0]) if terms else None

    def first_order(self, ce: torch.Tensor) -> tuple[torch.Tensor, Gradients]:
        """The architecture loss of `ce` and its gradient with respect to the parameters."""
        loss = self.loss(ce)
        return loss, list(torch.autograd.grad(loss, list(self.params.parameters()), allow_unused=True))

    def score_function(self, ce: torch.Tensor, log_p: torch.Tensor, device: torch.device) -> torch.Tensor:
        """A surrogate of the sampled path's `ce` (computed without autograd) whose value is the CE and whose
        gradient is (CE − b) · ∇ log p(path); b, the CE's moving average over ranks, moves on (`revert` undoes)."""
        mean_ce = all_reduce_sum([float(ce)], device, self.ctx)[0] / self.ctx.world
        baseline = mean_ce if self.ce_baseline is None else self.ce_baseline
        if math.isfinite(mean_ce):
            self.ce_baseline = BASELINE_DECAY * baseline + (1 - BASELINE_DECAY) * mean_ce
        return ce + (ce - baseline) * (log_p - log_p.detach())

    def second_order(
        self,
        model: nn.Module,
        inputs: Callable[[torch.Tensor], tuple],
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        train_batch: tuple[torch.Tensor, torch.Tensor],
        arch_batch: tuple[torch.Tensor, torch.Tensor],
        weight_optimizer: torch.optim.Optimizer,
        cfg: Any,
    ) -> tuple[torch.Tensor, Gradients, torch.Tensor]:
        """DARTS's unrolled gradient: the CE of the architecture batch after one virtual SGD step of the weights
        (the weight optimizer's learning rate, momentum buffers and the run's weight decay), its gradient, and the
        logits."""
        grads, ce, outputs = unrolled_arch_gradient(
            model,
            list(self.params.parameters()),
            inputs,
            loss,
            train_batch,
            arch_batch,
            lr=weight_optimizer.param_groups[0]["lr"],
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            momentum_buffers=momentum_buffers(weight_optimizer, model),
        )
        return ce, list(grads), outputs

    def with_penalty(self, grads: Gradients) -> Gradients:
        """`grads` plus the gradient of the hardware penalty and the regulariser, for gradients of the CE alone
        (second order)."""
        penalty = self.penalty()
        if penalty is None:
            return grads
        extra = torch.autograd.grad(penalty, list(self.params.parameters()), allow_unused=True)
        return [g if e is None else (e if g is None else g + e) for g, e in zip(grads, extra, strict=True)]

    def step(self, loss: torch.Tensor, grads: Sequence[torch.Tensor | None]) -> bool:
        """Average `grads` (one per parameter; None: zero) over ranks and step, unless any rank saw a
        non-finite loss or gradient; return whether the parameters changed."""
        params = list(self.params.parameters())
        full = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
        if self.ctx.enabled:
            for g in full:
                dist.all_reduce(g)
                g.div_(self.ctx.world)
        finite = self.agree_finite(bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in full))
        if finite:
            for p, g in zip(params, full, strict=True):
                p.grad = g
            self.optimizer.step()
            self.updates += 1
        self.optimizer.zero_grad(set_to_none=True)
        return finite

    def state_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "ce_baseline": self.ce_baseline,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params.load_state_dict(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.ce_baseline = state.get("ce_baseline")
