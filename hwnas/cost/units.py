"""The priced units of a layer-wise space (stem, every (layer, candidate) shape, head) and their table keys.

A key describes its unit, as OFA's latency tables do: `ir_k3_e6-input:16x56x56-output:24-stride:2-act:relu-e1:keep`.
Two layers of the same op and shapes share one key, so a table holds each distinct unit once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from torch import nn

from ..blocks import BlockConfig
from ..nets import ClassifierHead, build_layer, build_stem
from ..spaces import SpaceSpec


@dataclass(frozen=True)
class Unit:
    """One entry of a cost table: what it is, the shape it runs at, and a builder of the module to time and count."""

    key: str
    op: str  # a candidate op name, "stem", "head", or a part of a cell network such as "relu_conv_bn_1x1"
    c_in: int
    c_out: int
    stride: int
    input_shape: tuple[int, int, int]  # channels, height, width of one image
    build: Callable[[], nn.Module] = field(compare=False, repr=False)


Units = dict[str, Unit]


def config_tag(cfg: BlockConfig) -> str:
    tag = f"act:{cfg.activation}-e1:{'keep' if cfg.expand_at_e1 else 'drop'}"
    return tag if cfg.norm_inside else f"{tag}-norm:outside"


def layer_key(op: str, c_in: int, c_out: int, stride: int, hw: tuple[int, int], cfg: BlockConfig) -> str:
    return f"{op}-input:{c_in}x{hw[0]}x{hw[1]}-output:{c_out}-stride:{stride}-{config_tag(cfg)}"


def stem_key(space: SpaceSpec) -> str:
    parts = "+".join(f"{s.op}/{s.c_out}/s{s.stride}" for s in space.stem) or "none"
    return f"stem-{parts}-input:{'x'.join(map(str, space.input_size))}-{config_tag(space.block_config)}"


def head_key(space: SpaceSpec) -> str:
    h = space.head
    return (
        f"head-{h.op if h.channels else 'none'}-input:{h.c_in}x{h.input_hw[0]}x{h.input_hw[1]}-channels:{h.channels}"
        f"-classes:{h.num_classes}{'-cosine' if h.cosine else ''}-{config_tag(space.block_config)}"
    )


def layer_keys(space: SpaceSpec) -> list[list[str]]:
    """Per searchable layer, the key of each candidate."""
    cfg = space.block_config
    return [
        [layer_key(op, la.c_in, la.c_out, la.stride, la.input_hw, cfg) for op in la.candidates] for la in space.layers
    ]


def layer_units(space: SpaceSpec) -> Units:
    """Every distinct priced unit of a layer-wise space, in network order."""
    cfg, c_in = space.block_config, space.input_size[0]
    stem_out = space.stem[-1].c_out if space.stem else c_in
    stem_stride = math.prod(s.stride for s in space.stem)
    stem = Unit(stem_key(space), "stem", c_in, stem_out, stem_stride, space.input_size, partial(build_stem, space))
    units = {stem.key: stem}
    for layer, keys in zip(space.layers, layer_keys(space), strict=True):
        for op, key in zip(layer.candidates, keys, strict=True):
            build = partial(build_layer, op, layer, cfg)
            units.setdefault(key, Unit(key, op, layer.c_in, layer.c_out, layer.stride, layer.input_shape, build))
    h = space.head
    head = Unit(
        head_key(space), "head", h.c_in, h.num_classes, 1, (h.c_in, *h.input_hw), partial(ClassifierHead, space)
    )
    units[head.key] = head
    return units
