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
from .config import LIMIT_FLAGS

FLAGS = {name.removeprefix("max_"): flag for name, flag in LIMIT_FLAGS.items()}  # metric -> its option


@dataclass(frozen=True)
class Constraints:
    limits: dict[str, float]  # metric -> limit in its unit (ms, millions)
    costs: dict[str, CostModel | ArchitectureCostModel]

    def cost(self, path: Sequence[int]) -> dict[str, float]:
        return {metric: model.of(path) for metric, model in self.costs.items()}

    def fits(self, path: Sequence[int]) -> bool:
        return all(self.costs[m].of(path) <= limit for m, limit in self.limits.items())

    def describe(self) -> str:
        """The limits as flags (`--max-macs 0.5 --max-latency 2`), or "no limit"."""
        return " ".join(f"{FLAGS[m]} {v:g}" for m, v in self.limits.items()) or "no limit"

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
    """The hard limits the options set: metric -> limit in its unit (ms, millions); a limit with several values
    gives its loosest (`limit_sets` gives each)."""
    return limit_sets(cfg)[-1]


def limit_sets(cfg) -> list[dict[str, float]]:
    """One set of limits per network to ship, tightest first: the limit given several values takes each of them
    (the options sorted them), the other limits apply to every set; [{}] when no limit is set."""
    together = getattr(cfg, "check_together", None)
    if callable(together):
        together("search")  # an options object made without check_config
    given = {m: getattr(cfg, f"max_{m}") for m in FLAGS if getattr(cfg, f"max_{m}") is not None}
    several = [m for m, value in given.items() if isinstance(value, list)]
    if not several:
        return [given]
    return [{**given, several[0]: value} for value in sorted(given[several[0]])]


def priced(
    space: SpaceSpec, table: CostTable, latency_model: object = None
) -> dict[str, CostModel | ArchitectureCostModel]:
    """The cost models of `space`: `table`'s, latency by `latency_model` when that is an `ArchitectureLatencyModel`."""
    costs: dict[str, CostModel | ArchitectureCostModel] = dict(cost_models(table, space))
    if isinstance(latency_model, ArchitectureLatencyModel):
        costs["latency"] = ArchitectureCostModel(space, latency_model)
    return costs


def constraints_for(space: SpaceSpec, cfg, table: CostTable, latency_model: object = None) -> Constraints:
    """The options' limits on `space`, priced by `table` (latency by `latency_model` when that is an
    `ArchitectureLatencyModel`); a limit nothing meets is refused in one line."""
    return constraints_each(space, cfg, table, latency_model)[-1]


def constraints_each(space: SpaceSpec, cfg, table: CostTable, latency_model: object = None) -> list[Constraints]:
    """`constraints_for` once per set of `limit_sets(cfg)`, tightest first, the cost models shared."""
    costs = priced(space, table, latency_model)
    each = [Constraints(limits, costs) for limits in limit_sets(cfg)]
    for constraints in each:
        constraints.check_feasible(space)
    return each
