"""Plots written as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_write


def theta_heatmap(probs: Sequence[Sequence[float]], ops: Sequence[Sequence[str]], path: str | Path, title: str) -> Path:
    """Layers × candidates heat map of softmax(θ); grey where an op is not a candidate of that layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = list(dict.fromkeys(op for row in ops for op in row))
    grid = np.full((len(probs), len(columns)), np.nan)
    for i, (row_p, row_ops) in enumerate(zip(probs, ops, strict=True)):
        for p, op in zip(row_p, row_ops, strict=True):
            grid[i, columns.index(op)] = p
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(columns), 1.2 + 0.32 * len(probs)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i, row_p in enumerate(probs):
        best = max(range(len(row_p)), key=row_p.__getitem__)
        ax.text(columns.index(ops[i][best]), i, f"{row_p[best]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(probs)), [f"layer {i}" for i in range(len(probs))], fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="softmax(θ)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def pareto_plot(points, front, cost_name: str, path: str | Path, title: str) -> Path:
    """Accuracy against cost of every evaluated candidate; the non-dominated front highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p[1] for p in points], [p[0] for p in points], s=10, c="#8899aa", label="evaluated")
    ordered = sorted(front, key=lambda i: points[i][1])
    ax.plot(
        [points[i][1] for i in ordered], [points[i][0] for i in ordered], "o-", c="#d62728", ms=4, label="Pareto front"
    )
    ax.set_xlabel(cost_name)
    ax.set_ylabel("val top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))
