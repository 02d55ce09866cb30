"""`OpFamily`: how one family of candidate ops is named, checked and built."""

from __future__ import annotations

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
