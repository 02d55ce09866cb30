"""Fixed ops for stems and heads: `conv_k{K}` (conv-BN-act) and `max_pool_3x3` / `avg_pool_3x3`."""

from __future__ import annotations

import re

from torch import nn

from .common import ConvBNAct
from .family import OpFamily, Params, same_shape


def _parse_conv(groups: dict[str, str | None]) -> Params:
    kernel = int(groups["k"] or 0)
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel {kernel} is not an odd integer >= 1")
    return {"kernel": kernel}


CONV = OpFamily(
    name="conv",
    grammar="conv_k{K} (K odd)",
    pattern=re.compile(r"conv_k(?P<k>\d+)"),
    parse=_parse_conv,
    build=lambda p, c_in, c_out, stride, cfg: ConvBNAct(c_in, c_out, p["kernel"], stride, cfg),
)

POOL = OpFamily(
    name="pool",
    grammar="max_pool_3x3, avg_pool_3x3",
    pattern=re.compile(r"(?P<kind>max|avg)_pool_3x3"),
    check=lambda p, c_in, c_out, stride: same_shape(c_in, c_out, 1),
    build=lambda p, c_in, c_out, stride, cfg: (
        nn.MaxPool2d(3, stride, 1) if p["kind"] == "max" else nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    ),
)
