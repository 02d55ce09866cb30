"""`skip` (identity, or FBNet's 1x1 projection where shapes differ) and `zero` (layer removed)."""

from __future__ import annotations

import re

from torch import nn

from .common import ConvBNAct
from .family import OpFamily, same_shape

SKIP = OpFamily(
    name="skip",
    grammar="skip",
    pattern=re.compile(r"skip"),
    build=lambda p, c_in, c_out, stride, cfg: (
        nn.Identity() if c_in == c_out and stride == 1 else ConvBNAct(c_in, c_out, 1, stride, cfg)
    ),
)

ZERO = OpFamily(
    name="zero",
    grammar="zero",
    pattern=re.compile(r"zero"),
    check=lambda p, c_in, c_out, stride: same_shape(c_in, c_out, stride),
    build=lambda p, c_in, c_out, stride, cfg: nn.Identity(),
)
