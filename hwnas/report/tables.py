"""Plain-text tables of spaces and architecture profiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..arch import Architecture
    from ..cost import ModelProfile
    from ..cost.table import CostTable
    from ..spaces import CellSpaceSpec, SpaceSpec


def render(header: Sequence[str], rows: Sequence[Sequence[object]], markdown: bool = False) -> str:
    """Align columns (numbers right, text left); Markdown pipes when asked."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)]
        return f"| {' | '.join(parts)} |" if markdown else "  ".join(parts).rstrip()

    rule = (
        "|"
        + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True))
        + "|"
        if markdown
        else "  ".join("-" * w for w in widths)
    )
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _is_number(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).replace("%", "").lstrip("-").isdigit() or text in ("", "-")


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def space_table(spec: SpaceSpec) -> str:
    rows: list[list[object]] = [
        [f"stem.{i}", s.op, f"{s.c_in}->{s.c_out}", s.stride, _shape(s.input_hw)] for i, s in enumerate(spec.stem)
    ]
    rows += [
        [
            f"layers.{layer.index}",
            " ".join(layer.candidates),
            f"{layer.c_in}->{layer.c_out}",
            layer.stride,
            _shape(layer.input_hw),
        ]
        for layer in spec.layers
    ]
    head = spec.head
    rows.append(
        [
            "head",
            f"{head.op} {head.channels}, pool, fc {head.num_classes}"
            if head.channels
            else f"pool, fc {head.num_classes}",
            "",
            "",
            _shape(head.input_hw),
        ]
    )
    title = f"space {spec.name}: {spec.num_layers} searchable layers, input {_shape(spec.input_size)}"
    return title + "\n" + render(["unit", "ops", "channels", "stride", "input"], rows)


def cell_space_table(spec: CellSpaceSpec) -> str:
    """The stem and each cell of a cell space: type, widths, resolution; then the ops of every edge."""
    st = spec.stem
    rows: list[list[object]] = [["stem", st.kind, f"{st.c_in}->{st.c_prev}", _shape(spec.input_size[1:])]]
    rows += [
        [f"cells.{c.index}", c.kind, f"{c.c_prev_prev}+{c.c_prev}->{c.multiplier}x{c.channels}", _shape(c.input_hw)]
        for c in spec.cells
    ]
    last = spec.cells[-1]
    rows.append(["head", f"pool, fc {spec.num_classes}", "", _shape(last.output_hw)])
    title = (
        f"cell space {spec.name}: {len(spec.cells)} cells, {spec.nodes} nodes each "
        f"({sum(i + 2 for i in range(spec.nodes))} edges), input {_shape(spec.input_size)}"
        + (", auxiliary head" if spec.knobs["auxiliary"] else "")
    )
    return f"{title}\n{render(['unit', 'type', 'channels', 'input'], rows)}\nops per edge: {' '.join(spec.ops)}"


def profile_table(arch: Architecture, profile: ModelProfile) -> str:
    rows = [
        [u.name, u.op, _shape(u.input_shape), _shape(u.output_shape), f"{u.params:,}", f"{u.macs:,}"]
        for u in profile.units
    ]
    rows.append(["total", "", "", "", f"{profile.params:,}", f"{profile.macs:,}"])
    title = f"space {arch.spec.name}, input {_shape(arch.spec.input_size)}"
    return title + "\n" + render(["unit", "op", "input", "output", "params", "MACs"], rows)


def latency_table(spec: SpaceSpec, table: CostTable) -> str:
    """Per layer, each candidate's median latency (ms), and the range of whole-network predictions."""
    fixed, rows = table.matrix(spec, "latency")
    columns = list(dict.fromkeys(op for layer in spec.layers for op in layer.candidates))
    body = []
    for layer, row in zip(spec.layers, rows, strict=True):
        cells = dict(zip(layer.candidates, row, strict=True))
        body.append(
            [
                f"layers.{layer.index}",
                "x".join(map(str, layer.input_shape)),
                *(f"{cells[c]:.4f}" if c in cells else "-" for c in columns),
            ]
        )
    lo = fixed + sum(min(r) for r in rows)
    hi = fixed + sum(max(r) for r in rows)
    meta = table.meta
    title = (
        f"latency (ms, median) of {spec.name} on {meta.get('device')} ({meta.get('device_name')}), "
        f"{meta.get('threads')} thread(s) pinned, batch {meta.get('batch')}, {meta.get('dtype')}; "
        f"file {table.path}"
    )
    footer = f"stem + head {fixed:.4f} ms (offset {table.offset_ms:+.4f}); networks from {lo:.3f} to {hi:.3f} ms"
    return "\n".join([title, render(["layer", "input", *columns], body), footer])


def cell_latency_table(spec: CellSpaceSpec, table: CostTable) -> str:
    """Per op, its median latency (ms) on each distinct edge shape of the cell space, and the fixed parts."""
    from ..cost.cell_cost import CellCostModel, edge_key, head_key, preprocess_keys, stem_key

    shapes: dict[str, object] = {}
    for cell in spec.cells:
        for state in (0, 2) if cell.reduction else (0,):
            hw = cell.edge_input_hw(state)
            shapes.setdefault(f"{cell.channels}x{hw[0]}x{hw[1]}/s{cell.edge_stride(state)}", (cell, state))
    ops = [op for op in spec.ops if op != "none"]
    rows = [
        [op, *(f"{table.value(edge_key(spec, c, s, op), 'latency'):.4f}" for c, s in shapes.values())] for op in ops
    ]
    fixed = table.value(stem_key(spec), "latency") + table.value(head_key(spec), "latency")
    fixed += sum(table.value(k, "latency") for cell in spec.cells for k in preprocess_keys(spec, cell))
    cost = CellCostModel.from_table(table, spec, "latency")
    cheapest, _ = cost.cheapest()
    meta = table.meta
    title = (
        f"latency table of {spec.name} ({len(spec.cells)} cells, C{spec.knobs['init_channels']}, input "
        f"{_shape(spec.input_size)}) on {meta.get('device')} ({meta.get('device_name')}), "
        f"{meta.get('threads')} thread(s), batch {meta.get('batch')}; median ms per edge op"
    )
    footer = (
        f"fixed (stem, cell inputs, head): {fixed:.3f} ms; cheapest genotype {cheapest:.3f} ms "
        f"(sums of entries; `hwnas latency validate` measures whole networks)"
    )
    return f"{title}\n{render(['op', *shapes], rows)}\n{footer}"
