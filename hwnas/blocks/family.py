"""`OpFamily`: how one family of candidate ops is named, checked and built."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .common import BlockConfig

Params = dict[str, Any]


@dataclass(frozen=True)
class OpFamily:
    """One family of op names, e.g. every `ir_k{K}_e{E}[_g{G}][_se]`.

    `pattern` matches a whole name; its named groups become the op's params after
    `parse` (which raises ValueError for a well-formed name with a bad value).
    `grammar` shows the names to users: alternatives separated by commas, `{X}` for a
    number, `[...]` for an optional part, remarks in parentheses.
    `check(params, c_in, c_out, stride)` returns why the op cannot sit at a layer of
    that shape, or None. `build(params, c_in, c_out, stride, cfg)` makes the module.
    """

    name: str
    grammar: str
    pattern: re.Pattern[str]
    build: Callable[[Params, int, int, int, BlockConfig], nn.Module]
    parse: Callable[[dict[str, str | None]], Params] = lambda groups: dict(groups)
    check: Callable[[Params, int, int, int], str | None] = lambda params, c_in, c_out, stride: None


def same_shape(c_in: int, c_out: int, stride: int) -> str | None:
    """The `check` of ops whose output has the input's shape."""
    if c_in != c_out or stride != 1:
        return f"it keeps the input shape, but this layer maps {c_in} -> {c_out} channels with stride {stride}"
    return None


_REMARK = re.compile(r"\([^)]*\)")
_OPTIONAL = re.compile(r"\[([^\]]*)\]")
_NUMBER = re.compile(r"\{[^}]*\}")


def example_names(family: OpFamily) -> list[str]:
    """Names written out from the family's grammar (`{X}` as 3, each `[...]` with and without) that it accepts."""
    names = []
    for form in _REMARK.sub("", family.grammar).split(","):
        parts = _OPTIONAL.split(_NUMBER.sub("3", form.strip()))  # even indices: fixed text; odd: optional parts
        for kept in itertools.product((False, True), repeat=len(parts) // 2):
            name = "".join(part for i, part in enumerate(parts) if i % 2 == 0 or kept[i // 2])
            if name and family.pattern.fullmatch(name) and name not in names:
                names.append(name)
    return names
