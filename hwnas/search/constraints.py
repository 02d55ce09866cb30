"""Hard limits on MACs, parameters and latency, priced by a space's cost table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..cost.hardware_loss import UNITS, CostModel
from ..cost.table import CostTable, build_table, load_or_build
from ..errors import HwnasError
from ..spaces import SpaceSpec

FLAGS = {"macs": "--max-macs", "params": "--max-params", "latency": "--max-latency"}


@dataclass(frozen=True)
class Constraints:
    limits: dict[str, float]  # metric -> limit in its unit (ms, millions)
    costs: dict[str, CostModel]

    def cost(self, path: Sequence[int]) -> dict[str, float]:
        return {metric: model.of(path) for metric, model in self.costs.items()}

    def fits(self, path: Sequence[int]) -> bool:
        return all(self.costs[m].of(path) <= limit for m, limit in self.limits.items())

    def check_feasible(self, space: SpaceSpec) -> None:
        """One line naming the limit that no architecture meets, and the cheapest architecture's cost."""
        for metric, limit in self.limits.items():
            cheapest, picks = self.costs[metric].cheapest()
            if cheapest > limit:
                arch = ", ".join(la.candidates[i] for la, i in zip(space.layers, picks, strict=True))
                raise HwnasError(
                    f"{FLAGS[metric]} {limit:g}: no architecture in {space.name} meets it; the cheapest "
                    f"costs {cheapest:.4g} {UNITS[metric][0]} ({arch})"
                )


def cost_table(space: SpaceSpec, cfg, need_latency: bool, progress: bool = True) -> CostTable:
    """The measured (cached) table when latency is needed or a table file is given, else MACs and params only."""
    if need_latency or cfg.latency_table:
        return load_or_build(
            space,
            device=cfg.latency_device,
            threads=cfg.latency_threads,
            batch=cfg.latency_batch,
            table=cfg.latency_table,
            progress=progress,
        )
    return build_table(space, measure=False, progress=False)


def cost_models(table: CostTable, space: SpaceSpec, device: torch.device | str = "cpu") -> dict[str, CostModel]:
    metrics = UNITS if table.meta.get("measured", True) else ("macs", "params")
    return {m: CostModel.from_table(table, space, m, device) for m in metrics}


def constraints_for(space: SpaceSpec, cfg, progress: bool = True, need_latency: bool = False) -> Constraints:
    """Cost models of `space` (latency measured only when a latency limit, a table or the caller asks for it)."""
    limits = {m: getattr(cfg, f"max_{m}") for m in FLAGS if getattr(cfg, f"max_{m}") is not None}
    table = cost_table(space, cfg, need_latency or "latency" in limits, progress)
    constraints = Constraints(limits, cost_models(table, space))
    constraints.check_feasible(space)
    return constraints
