"""Hard limits on MACs, parameters and latency, priced by a space's cost table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..cost.hardware_loss import UNITS, CostModel
from ..cost.table import build_table, load_or_build
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


def constraints_for(space: SpaceSpec, cfg, progress: bool = True) -> Constraints:
    """Cost models of `space` (latency measured only when a latency limit or table asks for it)."""
    limits = {m: getattr(cfg, f"max_{m}") for m in FLAGS if getattr(cfg, f"max_{m}") is not None}
    if "latency" in limits or cfg.latency_table:
        table = load_or_build(
            space,
            device=cfg.latency_device,
            threads=cfg.latency_threads,
            batch=cfg.latency_batch,
            table=cfg.latency_table,
            progress=progress,
        )
    else:
        table = build_table(space, measure=False, progress=False)
    metrics = UNITS if table.meta.get("measured", True) else ("macs", "params")
    constraints = Constraints(limits, {m: CostModel.from_table(table, space, m) for m in metrics})
    constraints.check_feasible(space)
    return constraints
