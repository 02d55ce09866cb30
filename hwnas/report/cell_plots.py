"""Plots and drawings for DARTS-style cell search: α heat maps and genotype cell graphs.

A genotype is the dict of an architecture file: `normal`/`reduce` list [op, input] pairs, two per
intermediate node (input 0 = c_{k-2}, 1 = c_{k-1}, s >= 2 = node s-2), and `normal_concat`/`reduce_concat`
list the states concatenated into the cell output c_{k}. Edges whose op is "none" are drawn dashed grey,
labelled "none".
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HwnasError
from ..io import atomic_write, atomic_write_text

CELLS = ("normal", "reduce")
_INPUT_COLOUR = "#a8d5a2"
_NODE_COLOUR = "#b9d7f0"
_OUTPUT_COLOUR = "#f3e3a0"
_NONE_COLOUR = "#999999"
_RADIUS = 0.36


def _state_tex(state: int) -> str:
    """Matplotlib name of a cell state: $c_{k-2}$, $c_{k-1}$, then intermediate nodes n0, n1, ..."""
    return f"$c_{{k-{2 - state}}}$" if state < 2 else f"n{state - 2}"


def _validate(genotype: dict, cell: str) -> tuple[list[tuple[str, int]], list[int]]:
    """The (op, input) entries and concat states of one cell; HwnasError naming the first problem found."""
    if cell not in CELLS:
        raise HwnasError(f"cell: got {cell!r}, expected one of {', '.join(CELLS)}")
    if not isinstance(genotype, dict):
        raise HwnasError(f"genotype: got {type(genotype).__name__}, expected a dict with {cell} and {cell}_concat")
    for key in (cell, f"{cell}_concat"):
        if key not in genotype:
            raise HwnasError(f"genotype: missing field {key!r}")
    raw = genotype[cell]
    if not isinstance(raw, list | tuple) or not raw or len(raw) % 2:
        count = len(raw) if isinstance(raw, list | tuple) else type(raw).__name__
        raise HwnasError(f"genotype[{cell!r}]: got {count} entries, expected a non-empty list of [op, input] pairs")
    entries = []
    for k, entry in enumerate(raw):
        ok = isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], str)
        if not ok or not isinstance(entry[1], int) or isinstance(entry[1], bool):
            raise HwnasError(f"genotype[{cell!r}][{k}]: got {entry!r}, expected [op name, input index]")
        if not 0 <= entry[1] < k // 2 + 2:
            raise HwnasError(
                f"genotype[{cell!r}][{k}]: input {entry[1]} of node {k // 2} is out of range, expected 0..{k // 2 + 1}"
            )
        entries.append((entry[0], entry[1]))
    states = len(entries) // 2 + 2
    concat = genotype[f"{cell}_concat"]
    if not isinstance(concat, list | tuple) or not concat:
        raise HwnasError(f"genotype[{cell + '_concat'!r}]: got {concat!r}, expected a non-empty list of state indices")
    for s in concat:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < states:
            raise HwnasError(f"genotype[{cell + '_concat'!r}]: got state {s!r}, expected an index in 0..{states - 1}")
    return entries, list(concat)


def _edge_labels(nodes: int) -> list[str]:
    """Row labels of the flat edge order: node 0's inputs 0,1; node 1's inputs 0,1,2; ..."""
    return [f"n{i} ← {_state_tex(s)}" for i in range(nodes) for s in range(i + 2)]


def genotype_marks(genotype: dict, ops: Sequence[str], nodes: int) -> dict[str, set[tuple[int, int]]]:
    """The (edge, op index) squares of the heat map a derived genotype keeps, per cell type: two incoming edges
    per node, each with its op (under CNAS's sparse mode that op may be `none`)."""
    first_edge = [sum(k + 2 for k in range(node)) for node in range(nodes)]
    marks = {}
    for cell in ("normal", "reduce"):
        marks[cell] = {
            (first_edge[i // 2] + int(state), list(ops).index(op)) for i, (op, state) in enumerate(genotype[cell])
        }
    return marks


def strongest_marks(grids: dict[str, Any], ops: Sequence[str]) -> dict[str, set[tuple[int, int]]]:
    """Without a genotype: on every edge, its strongest op other than `none` (what DARTS would keep there)."""
    candidates = [j for j, op in enumerate(ops) if op != "none"] or list(range(len(ops)))
    return {
        cell: {(i, max(candidates, key=lambda j: row[j])) for i, row in enumerate(grid)} for cell, grid in grids.items()
    }


def alpha_heatmap(
    probs: dict[str, Sequence[Sequence[float]]],
    ops: Sequence[str],
    nodes: int,
    path: str | Path,
    title: str,
    genotype: dict | None = None,
) -> Path:
    """Edges × ops heat map of softmax(α) (or edge strengths), one panel per cell. Boxed: what `genotype` (the
    derived one, sparse or not) keeps; without a genotype, each edge's strongest op other than `none`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    edges = sum(i + 2 for i in range(nodes))
    grids = {}
    for cell, rows in probs.items():
        grid = np.asarray(rows, dtype=float)
        if grid.shape != (edges, len(ops)):
            raise HwnasError(
                f"probs[{cell!r}]: got shape {grid.shape}, expected ({edges}, {len(ops)}) for {nodes} nodes × ops"
            )
        grids[cell] = grid
    if not grids:
        raise HwnasError("probs: got no cell types, expected e.g. normal and reduce")
    values = np.concatenate([g.ravel() for g in grids.values()])
    normalised = values.min() >= 0 and all(np.allclose(g.sum(axis=1), 1, atol=1e-3) for g in grids.values())
    vmax = 1.0 if normalised else max(1e-9, float(values.max()))
    marks = genotype_marks(genotype, ops, nodes) if genotype is not None else strongest_marks(grids, ops)

    fig, axes = plt.subplots(
        1,
        len(grids),
        figsize=(1.6 + len(grids) * (1.1 + 0.55 * len(ops)), 1.6 + 0.3 * edges),
        squeeze=False,
        layout="constrained",
    )
    for ax, (cell, grid) in zip(axes[0], grids.items(), strict=True):
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                colour = "black" if value / vmax > 0.6 else "white"
                weight = "bold" if (i, j) in marks.get(cell, ()) else "normal"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6.5, color=colour, fontweight=weight)
        for i, j in marks.get(cell, ()):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#e4572e", linewidth=1.6))
        for boundary in np.cumsum([i + 2 for i in range(nodes - 1)]):
            ax.axhline(boundary - 0.5, color="white", linewidth=1.5)
        ax.set_xticks(range(len(ops)), list(ops), rotation=50, ha="right", fontsize=8)
        ax.set_yticks(range(edges), _edge_labels(nodes), fontsize=7.5)
        ax.set_title(f"{cell} cell", fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="softmax(α)" if normalised else "edge strength", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _quote(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def genotype_dot(genotype: dict, cell: str) -> str:
    """Graphviz DOT source of one cell of a genotype, laid out left to right."""
    entries, concat = _validate(genotype, cell)
    ids = ["c_k_2", "c_k_1"] + [f"n{i}" for i in range(len(entries) // 2)]
    lines = [
        f"digraph {_quote(cell)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=14];',
        '  edge [fontname="Helvetica", fontsize=11];',
        f'  c_k_2 [label="c_{{k-2}}", fillcolor="{_INPUT_COLOUR}"];',
        f'  c_k_1 [label="c_{{k-1}}", fillcolor="{_INPUT_COLOUR}"];',
    ]
    lines += [f'  n{i} [label="{i}", fillcolor="{_NODE_COLOUR}"];' for i in range(len(entries) // 2)]
    lines.append(f'  c_k [label="c_{{k}}", fillcolor="{_OUTPUT_COLOUR}"];')
    for k, (op, state) in enumerate(entries):
        style = f', style=dashed, color="{_NONE_COLOUR}", fontcolor="{_NONE_COLOUR}"' if op == "none" else ""
        lines.append(f"  {ids[state]} -> n{k // 2} [label={_quote(op)}{style}];")
    lines += [f"  {ids[state]} -> c_k;" for state in concat]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_dot(source: str) -> dict[str, bytes] | str | None:
    """SVG and PNG bytes from Graphviz `dot`; None without `dot`; a one-line reason when `dot` fails."""
    exe = shutil.which("dot")
    if not exe:
        return None
    out = {}
    for fmt in ("svg", "png"):
        try:
            done = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{exe} -T{fmt}: {exc}"
        if done.returncode != 0 or not done.stdout:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return f"{exe} -T{fmt}: exit {done.returncode}" + (f" ({lines[0]})" if lines else "")
        out[fmt] = done.stdout
    return out


def _arc_point(p0: tuple[float, float], p1: tuple[float, float], rad: float, t: float) -> tuple[float, float]:
    """Point at t of matplotlib's `arc3,rad=rad` curve from p0 to p1 (a quadratic Bézier)."""
    (x0, y0), (x1, y1) = p0, p1
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    u = 1 - t
    return u * u * x0 + 2 * u * t * cx + t * t * x1, u * u * y0 + 2 * u * t * cy + t * t * y1


def _bend(p0: tuple[float, float], p1: tuple[float, float], others: list, taken: list[float], away: int) -> float:
    """The gentlest arc3 bend (tried `away` side first) whose curve misses the other nodes and the bends taken."""
    for size in (0.0, 0.15, 0.3, 0.45, 0.6):
        for rad in (away * size, -away * size):
            points = [_arc_point(p0, p1, rad, k / 20) for k in range(1, 20)]
            apart = all(abs(rad - other) >= 0.3 for other in taken)
            if apart and all(math.dist(p, o) > _RADIUS + 0.12 for p in points for o in others):
                return rad
    return away * (0.6 + 0.3 * len(taken))


def _cell_png(entries: list[tuple[str, int]], concat: list[int], title: str) -> bytes:
    """Matplotlib drawing of a cell: inputs, intermediate nodes in order, output, in columns left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyArrowPatch

    nodes, output, gap = len(entries) // 2, len(entries) // 2 + 2, 2.0
    # Inputs share the first column; node i has column i + 1, alternately above and below the middle line.
    position = {0: (0.0, 1.2), 1: (0.0, -1.2), output: (gap * (nodes + 1), 0.0)}
    position |= {i + 2: (gap * (i + 1), 0.6 if i % 2 == 0 else -0.6) for i in range(nodes)}
    names = {0: _state_tex(0), 1: _state_tex(1), output: "$c_{k}$"} | {i + 2: str(i) for i in range(nodes)}
    colours = {0: _INPUT_COLOUR, 1: _INPUT_COLOUR, output: _OUTPUT_COLOUR}

    edges = [(state, k // 2 + 2, op) for k, (op, state) in enumerate(entries)]
    edges += [(state, output, "") for state in concat]
    bends: dict[tuple[int, int], list[float]] = {}
    # Half-widths and half-heights around nodes and placed labels, which a new label must keep out of.
    boxes = [(x, y, _RADIUS + 0.45, _RADIUS + 0.12) for x, y in position.values()]
    curves = []  # (source, target, op, rad, label position or None)
    for source, target, op in edges:
        p0, p1 = position[source], position[target]
        others = [xy for state, xy in position.items() if state not in (source, target)]
        taken = bends.setdefault((source, target), [])
        rad = _bend(p0, p1, others, taken, away=-1 if p0[1] + p1[1] >= 0 else 1)
        taken.append(rad)
        label = None
        if op:
            # At the curve's midpoint, or the nearest point along it clear of nodes and earlier labels.
            for t in (0.5, 0.38, 0.62, 0.28, 0.72, 0.5):
                label = _arc_point(p0, p1, rad, t)
                if all(abs(label[0] - x) > w or abs(label[1] - y) > h for x, y, w, h in boxes):
                    break
            boxes.append((*label, 0.85, 0.26))
        curves.append((source, target, op, rad, label))
    heights = [_arc_point(position[s], position[t], rad, k / 10)[1] for s, t, _, rad, _ in curves for k in range(11)]
    low, high = min(-1.2, *heights) - _RADIUS - 0.2, max(1.2, *heights) + _RADIUS + 0.2
    right = gap * (nodes + 1) + _RADIUS + 0.2

    unit = 0.85  # inches per data unit; equal aspect, so the figure follows the drawing's extent
    fig, ax = plt.subplots(figsize=(unit * (right + _RADIUS + 0.2) + 0.3, unit * (high - low) + 0.6))
    circles = {}
    for state, (x, y) in position.items():
        circles[state] = Circle((x, y), _RADIUS, facecolor=colours.get(state, _NODE_COLOUR), edgecolor="#333", zorder=3)
        ax.add_patch(circles[state])
        ax.text(x, y, names[state], ha="center", va="center", fontsize=10, zorder=4)
    for source, target, op, rad, label in curves:
        colour = _NONE_COLOUR if op == "none" else "#333" if op else "#888"
        arrow = FancyArrowPatch(
            position[source],
            position[target],
            connectionstyle=f"arc3,rad={rad}",
            arrowstyle="-|>",
            mutation_scale=11,
            color=colour,
            linestyle="--" if op == "none" else "-",
            linewidth=1.1 if op else 0.9,
            patchA=circles[source],
            patchB=circles[target],
            zorder=1,
        )
        ax.add_patch(arrow)
        if label:
            box = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
            ax.text(*label, op, ha="center", va="center", fontsize=7, color=colour, bbox=box, zorder=2)
    ax.set_xlim(-_RADIUS - 0.2, right)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def draw_cell(genotype: dict, cell: str, directory: str | Path, stem: str | None = None) -> list[Path]:
    """Write <stem>.dot, then <stem>.svg and .png with Graphviz, or <stem>.png with matplotlib without it."""
    entries, concat = _validate(genotype, cell)
    directory, stem = Path(directory), stem or cell
    source = genotype_dot(genotype, cell)
    written = [atomic_write_text(directory / f"{stem}.dot", source)]
    rendered = _render_dot(source)
    if isinstance(rendered, dict):
        for fmt, data in rendered.items():
            written.append(atomic_write(directory / f"{stem}.{fmt}", lambda f, data=data: f.write(data)))
        return written
    if rendered is not None:
        warnings.warn(f"{rendered}; drawing {stem}.png with matplotlib instead", RuntimeWarning, stacklevel=2)
    png = _cell_png(entries, concat, f"{cell} cell")
    written.append(atomic_write(directory / f"{stem}.png", lambda f: f.write(png)))
    return written


def draw_genotype(genotype: dict, directory: str | Path) -> list[Path]:
    """Draw both cells of a genotype (normal.*, reduce.*) into `directory`."""
    for cell in CELLS:
        _validate(genotype, cell)
    return [path for cell in CELLS for path in draw_cell(genotype, cell, directory, stem=cell)]
