"""`CostModel`: a layer-wise space's cost in one metric as the differentiable sum DNAS prices, and the unit each
metric is reported in (with its scale from table values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..spaces import SpaceSpec
from .table import CostTable

UNITS = {"latency": ("ms", 1.0), "macs": ("M MACs", 1e-6), "params": ("M params", 1e-6)}


@dataclass
class CostModel:
    """Fixed cost plus one row of candidate costs per searchable layer, in the metric's unit."""

    metric: str
    fixed: float
    rows: list[torch.Tensor]

    @classmethod
    def from_table(cls, table: CostTable, space: SpaceSpec, metric: str, device: torch.device | str = "cpu"):
        fixed, rows = table.matrix(space, metric)
        scale = UNITS[metric][1]
        return cls(metric, fixed * scale, [torch.tensor(r, dtype=torch.float32, device=device) * scale for r in rows])

    @property
    def unit(self) -> str:
        return UNITS[self.metric][0]

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ_l p_l · cost_l + fixed, differentiable in p."""
        return self.fixed + sum((p * row).sum() for p, row in zip(probs, self.rows, strict=True))

    def of(self, indices: Sequence[int]) -> float:
        return self.fixed + sum(float(row[i]) for row, i in zip(self.rows, indices, strict=True))

    def cheapest(self) -> tuple[float, list[int]]:
        picks = [int(row.argmin()) for row in self.rows]
        return self.of(picks), picks
