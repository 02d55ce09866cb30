"""`Architect`: the one owner of the architecture parameters (θ of DNAS, α of DARTS), as DARTS's own.

It holds the parameters and their optimizer, prices the current distribution with the cost model
under the hardware loss, and takes a step: the gradient averaged over DDP ranks (so every rank holds
the same θ/α and derives the same architecture), the step refused on every rank when the loss or any
gradient is not finite on any rank.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..cost.hardware_loss import HardwareLoss
from ..engine.distributed import Dist


class Architect:
    """`params`: the module of architecture parameters; `expected_cost()`: the differentiable expected
    cost of their current distribution (None: no hardware term); `agree_finite`: the trainer's vote of
    all ranks on whether a step is finite."""

    def __init__(
        self,
        params: nn.Module,
        optimizer: torch.optim.Optimizer,
        ctx: Dist,
        agree_finite: Callable[[bool], bool],
        expected_cost: Callable[[], torch.Tensor] | None = None,
        hardware_loss: HardwareLoss | None = None,
    ) -> None:
        self.params, self.optimizer, self.ctx = params, optimizer, ctx
        self.agree_finite = agree_finite
        self.expected_cost = expected_cost if hardware_loss is not None else None
        self.hardware_loss = hardware_loss
        self.updates = 0  # steps that changed the parameters

    def loss(self, ce: torch.Tensor) -> torch.Tensor:
        """The architecture loss: the hardware loss of `ce` and the expected cost (just `ce` without one)."""
        if self.expected_cost is None or self.hardware_loss is None:
            return ce
        return self.hardware_loss(ce, self.expected_cost())

    def penalty(self) -> torch.Tensor | None:
        """λ · penalty(expected cost) alone, for additive losses whose CE gradient comes from elsewhere."""
        if self.expected_cost is None or self.hardware_loss is None:
            return None
        return self.hardware_loss.weight * self.hardware_loss.penalty(self.expected_cost())

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
        return {"params": self.params.state_dict(), "optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.params.load_state_dict(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
