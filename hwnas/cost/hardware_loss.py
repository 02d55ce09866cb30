"""Hardware-aware losses over the differentiable expected cost `Σ_l softmax(θ_l) · cost_l`.

- `mul` (FBNet): `CE · α · log(ĉ)^β`, α = 0.2, β = 0.6, on the cost normalised by a reference,
  ĉ = e · c_eff / c_ref, so the loss has the same shape in ms or millions, at any scale, and
  log(ĉ) >= 1 (α is the factor at the reference). Without a target c_ref is the cost of the
  space's cheapest architecture and c_eff the cost; with one, c_ref is the target and c_eff is
  `max(cost, target)` (`above`: no pressure below it) or `target + |cost − target|` (`abs`).
- `add`: `CE + λ · penalty`, penalty = cost, or with a target: `max(0, cost − target)` (`above`)
  or `|cost − target|` (`abs`); λ = 0.005 (`--hc-weight`).

Units: latency in ms, MACs and params in millions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..choices import HW_LOSS_FORMS, TARGET_MODES
from ..errors import HwnasError
from .cost_model import CostModel

FORMS = HW_LOSS_FORMS


@dataclass(frozen=True)
class HardwareLoss:
    """The hardware-aware loss of θ; `mul` without a target needs `reference`, set by `fitted`."""

    form: str = "mul"
    alpha: float = 0.2
    beta: float = 0.6
    weight: float = 0.005
    target: float | None = None
    target_mode: str = "above"
    reference: float | None = None  # the cheapest architecture's cost, in the cost's unit

    @classmethod
    def from_config(cls, cfg: Any, cost: CostModel) -> HardwareLoss:
        """The loss `cfg`'s options (`--hw-loss --alpha --beta --hc-weight --target --target-mode`) ask for, fitted."""
        return cls(cfg.hw_loss, cfg.alpha, cfg.beta, cfg.hc_weight, cfg.target, cfg.target_mode).fitted(cost)

    def fitted(self, cost: CostModel) -> HardwareLoss:
        """This loss with `reference` set to the cost of the cheapest architecture `cost` prices."""
        return replace(self, reference=cost.cheapest()[0])

    def check(self, cost: CostModel, ops: Sequence[Sequence[str]]) -> None:
        """One clear line for settings no architecture of a layer-wise space can satisfy or the loss cannot use."""
        cheapest, picks = cost.cheapest()
        self.check_against(cheapest, cost.unit, ", ".join(row[i] for row, i in zip(ops, picks, strict=True)))

    def check_against(self, cheapest: float, unit: str, cheapest_arch: str) -> None:
        """`check` given the cheapest architecture's cost (in `unit`) and a description of it."""
        self._check_settings()
        if self.target is not None:
            self._check_target(cheapest, unit, cheapest_arch)
        elif self.form == "mul" and not cheapest > 0:
            raise HwnasError(
                f"--hw-loss mul: the cheapest architecture costs {cheapest:.4g} {unit} ({cheapest_arch}), "
                f"expected a cost > 0 {unit} to normalise by; use --hw-loss add or set --target"
            )

    def _check_settings(self) -> None:
        if self.form not in FORMS:
            raise HwnasError(f"--hw-loss {self.form!r}: expected one of {', '.join(FORMS)}")
        if self.target_mode not in TARGET_MODES:
            raise HwnasError(f"--target-mode {self.target_mode!r}: expected one of {', '.join(TARGET_MODES)}")
        for name, value in (("alpha", self.alpha), ("beta", self.beta)):
            if not (value > 0 and math.isfinite(value)):
                raise HwnasError(f"--{name} {value}: expected a number > 0")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise HwnasError(f"--hc-weight {self.weight}: expected a number >= 0")

    def _check_target(self, cheapest: float, unit: str, cheapest_arch: str) -> None:
        if not (self.target > 0 and math.isfinite(self.target)):
            raise HwnasError(f"--target {self.target:g} {unit}: expected a cost > 0 {unit}")
        if self.target < cheapest:
            raise HwnasError(
                f"--target {self.target:g} {unit}: no architecture in this space meets it; "
                f"the cheapest costs {cheapest:.4g} {unit} ({cheapest_arch})"
            )

    def penalty(self, cost: torch.Tensor) -> torch.Tensor:
        """The `add` form's penalty: the cost, or its distance above (or from) the target."""
        if self.target is None:
            return cost
        if self.target_mode == "above":
            return torch.relu(cost - self.target)
        return (cost - self.target).abs()

    def normalised(self, cost: torch.Tensor) -> torch.Tensor:
        """The `mul` form's ĉ = e · c_eff / c_ref (>= e whenever the cost is at least the cheapest's)."""
        if self.target is None:
            if self.reference is None:
                raise ValueError("HardwareLoss('mul') without a target needs a reference cost: use .fitted(cost)")
            return math.e * cost / self.reference
        if self.target_mode == "above":
            effective = torch.clamp(cost, min=self.target)
        else:
            effective = self.target + (cost - self.target).abs()
        return math.e * effective / self.target

    def __call__(self, ce: torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        if self.form == "mul":
            return ce * self.alpha * self.normalised(cost).log().pow(self.beta)
        return ce + self.weight * self.penalty(cost)
