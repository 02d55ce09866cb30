"""The zoo table: what hwnas counts for each zoo model beside what its paper publishes."""

from __future__ import annotations

import json
from typing import Any

from .. import zoo
from ..cache import cached_json
from .tables import render


def _count(name: str) -> dict[str, int]:
    from ..arch import Architecture  # torch only when the counts are not cached yet
    from ..cost import profile_arch

    profile = profile_arch(Architecture.from_zoo(name))
    return {"params": profile.params, "macs": profile.macs}


def zoo_rows() -> list[dict[str, Any]]:
    """One row per zoo model; counts are cached on disk keyed by the file and hwnas's code."""
    rows = []
    for name in zoo.names():
        text = zoo.path(name).read_text()
        data = json.loads(text)
        paper = data.get("meta", {}).get("paper", {})
        counts = cached_json("zoo-profile", {"name": name, "file": text}, lambda name=name: _count(name))
        rows.append({"name": name, "space": data["space"], **counts, "paper": paper})
    return rows


def _delta(ours: int, published_m: float | None) -> str:
    return "" if not published_m else f"{round((ours / 1e6 - published_m) / published_m * 100, 1) + 0.0:+.1f}%"


def zoo_table(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    header = ["model", "space", "params (M)", "paper", "Δ", "MACs (M)", "paper", "Δ", "top-1 (paper)"]
    body = []
    for r in rows:
        p = r["paper"]
        body.append(
            [
                r["name"],
                r["space"],
                f"{r['params'] / 1e6:.3f}",
                p.get("params_m", "-"),
                _delta(r["params"], p.get("params_m")),
                f"{r['macs'] / 1e6:.1f}",
                p.get("macs_m", "-"),
                _delta(r["macs"], p.get("macs_m")),
                p.get("top1", "-"),
            ]
        )
    return render(header, body, markdown=markdown)
