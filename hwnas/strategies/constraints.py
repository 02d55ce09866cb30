"""Hard limits on MACs, parameters and latency, priced by a space's cost table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..cost.cost_model import UNITS, CostModel
from ..cost.models import ArchitectureCostModel, ArchitectureLatencyModel
from ..cost.table import CostTable
from ..errors import HwnasError
from ..spaces import SpaceSpec

FLAGS = {"macs": "--max-macs", "params": "--max-params", "latency": "--max-latency"}


@dataclass(frozen=True)
class Constraints:
    limits: dict[str, float]  # metric -> limit in its unit (ms, millions)
    costs: dict[str, CostModel | ArchitectureCostModel]

    def cost(self, path: Sequence[int]) -> dict[str, float]:
        return {metric: model.of(path) for metric, model in self.costs.items()}

    def fits(self, path: Sequence[int]) -> bool:
        return all(self.costs[m].of(path) <= limit for m, limit in self.limits.items())

    def check_feasible(self, space: SpaceSpec) -> None:
        """One line naming the limit that no architecture meets, and the cheapest architecture's cost."""
        for metric, limit in self.limits.items():
            model = self.costs[metric]
            cheapest, picks = model.cheapest()
            if cheapest > limit:
                arch = ", ".join(la.candidates[i] for la, i in zip(space.layers, picks, strict=True))
                found = "the cheapest found" if isinstance(model, ArchitectureCostModel) else "the cheapest"
                raise HwnasError(
                    f"{FLAGS[metric]} {limit:g}: no architecture in {space.name} meets it; {found} "
                    f"costs {cheapest:.4g} {UNITS[metric][0]} ({arch})"
                )


def cost_models(table: CostTable, space: SpaceSpec, device: torch.device | str = "cpu") -> dict[str, CostModel]:
    metrics = UNITS if table.meta.get("measured", True) else ("macs", "params")
    return {m: CostModel.from_table(table, space, m, device) for m in metrics}


def limits_of(cfg) -> dict[str, float]:
    """The hard limits the options set: metric -> limit in its unit (ms, millions)."""
    return {m: getattr(cfg, f"max_{m}") for m in FLAGS if getattr(cfg, f"max_{m}") is not None}


def constraints_for(space: SpaceSpec, cfg, table: CostTable, latency_model: object = None) -> Constraints:
    """The options' limits on `space`, priced by `table` (latency by `latency_model` when that is an
    `ArchitectureLatencyModel`); a limit nothing meets is refused in one line."""
    costs: dict[str, CostModel | ArchitectureCostModel] = dict(cost_models(table, space))
    if isinstance(latency_model, ArchitectureLatencyModel):
        costs["latency"] = ArchitectureCostModel(space, latency_model)
    constraints = Constraints(limits_of(cfg), costs)
    constraints.check_feasible(space)
    return constraints
