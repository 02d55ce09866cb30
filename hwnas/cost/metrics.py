"""The cost metrics a table prices, and the unit each is reported in (with its scale from table values)."""

from __future__ import annotations

from ..choices import COST_METRICS

METRICS = COST_METRICS
UNITS = {"latency": ("ms", 1.0), "macs": ("M MACs", 1e-6), "params": ("M params", 1e-6)}
