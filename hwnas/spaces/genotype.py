"""`Genotype`: the discrete cells of a cell space, as an architecture file holds them.

    {"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [["max_pool_3x3", 0], ...], "reduce_concat": [2, 3, 4, 5]}

Entries 2i and 2i+1 are the two inputs of intermediate node i: an op and the state it reads
(0: the cell two back, 1: the previous cell, s >= 2: node s - 2). A cell outputs its
`*_concat` states concatenated along channels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..errors import ArchError

CELL_TYPES = ("normal", "reduce")
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

Edge = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def edges(self, cell: str) -> tuple[Edge, ...]:
        return self.normal if cell == "normal" else self.reduce

    def concat(self, cell: str) -> tuple[int, ...]:
        return self.normal_concat if cell == "normal" else self.reduce_concat

    def nodes(self, cell: str) -> int:
        return len(self.edges(cell)) // 2

    def count(self, op: str, cell: str = "normal") -> int:
        return sum(name == op for name, _ in self.edges(cell))

    def to_dict(self) -> dict[str, Any]:
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def describe(self) -> str:
        def cell(c: str) -> str:
            return " ".join(f"{op}<-{j}" for op, j in self.edges(c)) + f" | concat {list(self.concat(c))}"

        return f"normal: {cell('normal')}; reduce: {cell('reduce')}"

    @classmethod
    def from_dict(cls, data: Any, ops: tuple[str, ...], where: str = "genotype") -> Genotype:
        """Validate a decoded genotype against the space's ops; one ArchError line on the first fault."""
        if not isinstance(data, dict):
            raise ArchError(f"{where}: got {data!r}, expected an object with {', '.join(FIELDS)}")
        unknown = [k for k in data if k not in FIELDS]
        if unknown:
            raise ArchError(f"{where}: unknown field {unknown[0]!r}; expected only {', '.join(FIELDS)}")
        parts: dict[str, Any] = {}
        for cell in CELL_TYPES:
            edges = data.get(cell)
            if not isinstance(edges, list) or not edges or len(edges) % 2:
                raise ArchError(
                    f"{where}.{cell}: got {edges!r}, expected a non-empty list of [op, input] pairs, two per node"
                )
            checked = []
            for e, edge in enumerate(edges):
                node = e // 2
                at = f"{where}.{cell}[{e}]"
                if not (isinstance(edge, list | tuple) and len(edge) == 2 and isinstance(edge[0], str)):
                    raise ArchError(f"{at}: got {edge!r}, expected [op name, input state index]")
                op, state = edge
                if op not in ops:
                    raise ArchError(f"{at}: op {op!r} is not in this space's ops; expected one of {', '.join(ops)}")
                if not (isinstance(state, int) and not isinstance(state, bool) and 0 <= state < node + 2):
                    raise ArchError(
                        f"{at}: node {node} reads state {state!r}, which does not exist before it; "
                        f"expected 0..{node + 1} (0, 1: the two previous cells; s >= 2: node s-2)"
                    )
                checked.append((op, state))
            concat = data.get(f"{cell}_concat")
            last = len(edges) // 2 + 1
            if (
                not isinstance(concat, list)
                or not concat
                or not all(isinstance(s, int) and not isinstance(s, bool) and 2 <= s <= last for s in concat)
                or len(set(concat)) != len(concat)
            ):
                raise ArchError(
                    f"{where}.{cell}_concat: got {concat!r}, expected distinct node states in 2..{last} "
                    f"(this cell has {len(edges) // 2} nodes)"
                )
            parts[cell] = tuple(checked)
            parts[f"{cell}_concat"] = tuple(concat)
        return cls(**parts)


def random_genotype(
    ops: tuple[str, ...], nodes: int, rng: random.Random, sparse: bool = False, shared: bool = False
) -> Genotype:
    """A genotype drawn as DARTS derives them: two distinct inputs per node, each with an op other than `none`
    (any op when `sparse`, as CNAS's sparse genotypes may keep it); the normal cell, then the reduction cell
    (the normal one again when `shared`)."""
    allowed = [op for op in ops if sparse or op != "none"]
    cells = [
        tuple((rng.choice(allowed), j) for node in range(nodes) for j in rng.sample(range(node + 2), 2))
        for _ in CELL_TYPES[: 1 if shared else 2]
    ]
    cells = cells * 2 if shared else cells
    concat = tuple(range(2, nodes + 2))
    return Genotype(cells[0], concat, cells[1], concat)
