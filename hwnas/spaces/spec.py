"""`SpaceSpec`: a layer-wise search space read from YAML and resolved against its knobs.

A space file declares a macro skeleton and the candidate ops of each searchable layer:

    name: fbnet
    source: Wu et al., FBNet, CVPR 2019, Table 1
    knobs: {input_size: [3, 224, 224], activation: relu}
    stem:   [{op: conv_k3, channels: 16, stride: 2}]
    stages: [{channels: 24, layers: 4, stride: 2, overrides: {0: [ir_k3_e6]}}, ...]
    candidates: [ir_k3_e1, ir_k3_e6, skip]      # default of every stage
    head:   {op: conv_k1, channels: 1984}

`extends: OTHER` starts from another space and replaces the keys given (knobs merge).
Everything downstream (supernet, standalone model, cost tables) reads the resolved
layers below, so a space is declared once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..blocks import BlockConfig, check_op, check_output_shape, make_divisible
from ..errors import HwnasError, SpaceError
from ..limits import check_footprint, check_width
from ..readers import load_yaml
from .cell_space import CellSpaceSpec, resolve_cell_space
from .knobs import InputSized, resolve_knobs

BUILTIN_DIR = Path(__file__).parent / "builtin"
COMMON_KEYS = ("name", "source", "kind", "extends", "knobs", "search_defaults")
LAYERWISE_KEYS = (*COMMON_KEYS, "stem", "stages", "candidates", "head")


@dataclass(frozen=True)
class FixedLayer:
    """A stem layer: one op with fixed width and stride."""

    op: str
    c_in: int
    c_out: int
    stride: int
    input_hw: tuple[int, int]


@dataclass(frozen=True)
class SearchLayer:
    """A searchable layer: its position, shape and the ops it may choose from."""

    index: int
    stage: int
    c_in: int
    c_out: int
    stride: int
    input_hw: tuple[int, int]
    candidates: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.c_in, *self.input_hw)


@dataclass(frozen=True)
class HeadSpec:
    """Last conv (if `channels` > 0), global average pool, dropout, linear classifier."""

    op: str
    c_in: int
    channels: int
    input_hw: tuple[int, int]
    dropout: float
    num_classes: int
    bias: bool
    cosine: bool = False


@dataclass(frozen=True)
class SpaceSpec(InputSized):
    name: str
    origin: str
    declaration: dict[str, Any] = field(repr=False)
    knobs: dict[str, Any]
    block_config: BlockConfig
    stem: tuple[FixedLayer, ...]
    layers: tuple[SearchLayer, ...]
    head: HeadSpec
    kind: str = "layerwise"

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def with_knobs(self, **overrides: Any) -> SpaceSpec:
        """The same declaration resolved with some knobs changed."""
        return resolve_space(self.name, self.origin, self.declaration, {**self.knobs, **overrides})

    def knob_overrides(self) -> dict[str, Any]:
        """Knobs that differ from the declaration's own values (what an architecture file records)."""
        declared = resolve_space(self.name, self.origin, self.declaration, {}).knobs
        return {k: v for k, v in self.knobs.items() if declared.get(k) != v}

    def fingerprint(self) -> str:
        """A hash of everything that decides the network's shape: declaration and knobs."""
        blob = json.dumps({"declaration": self.declaration, "knobs": self.knobs}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def builtin_spaces() -> list[str]:
    """The names of the spaces that ship with hwnas (hwnas/spaces/builtin/*.yaml)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _read_declaration(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[str, str, dict[str, Any]]:
    path = BUILTIN_DIR / f"{name_or_path}.yaml"
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
    if not path.is_file():
        raise SpaceError(
            f"space {name_or_path!r} is neither a built-in space ({', '.join(builtin_spaces())}) nor a YAML file"
        )
    try:
        data = load_yaml(path, "space file")
    except HwnasError as exc:
        raise SpaceError(str(exc)) from None
    if not isinstance(data, dict):
        raise SpaceError(f"space file {path}: expected a mapping at the top level, got {type(data).__name__}")
    origin = name_or_path if path.parent == BUILTIN_DIR else str(path)
    allowed = COMMON_KEYS if data.get("kind") == "cell" else LAYERWISE_KEYS
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        kind = "a cell space" if data.get("kind") == "cell" else "a layer-wise space"
        raise SpaceError(f"space file {path}: unknown key {unknown[0]!r} in {kind}; expected only {', '.join(allowed)}")
    base = data.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise SpaceError(f"space file {path}: extends: got {base!r}, expected a space name or YAML path")
        if base in seen:
            raise SpaceError(f"space file {path}: extends {base!r} in a cycle")
        _, _, parent = _read_declaration(base, (*seen, name_or_path))
        for knobs in (parent.get("knobs"), data.get("knobs")):
            if knobs is not None and not isinstance(knobs, dict):
                raise SpaceError(f"space file {path}: knobs: got {knobs!r}, expected a mapping of knob names to values")
        knobs = {**(parent.get("knobs") or {}), **(data.pop("knobs", None) or {})}
        data = {**parent, **data, "knobs": knobs}
    name = data.get("name", path.stem)
    return str(name), origin, data


def load_space(name_or_path: str, **knobs: Any) -> SpaceSpec | CellSpaceSpec:
    """Load a built-in space by name or a user's space YAML by path, with knob overrides.

    A declaration with `kind: cell` is a DARTS-style cell space (`CellSpaceSpec`); any other is layer-wise.
    """
    if not isinstance(name_or_path, str):
        raise SpaceError(f"space {name_or_path!r} is not a name or a path")
    name, origin, declaration = _read_declaration(name_or_path)
    kind = declaration.get("kind", "layerwise")
    if kind == "cell":
        spec: SpaceSpec | CellSpaceSpec = resolve_cell_space(name, origin, declaration, knobs)
    elif kind == "layerwise":
        spec = resolve_space(name, origin, declaration, knobs)
    else:
        raise SpaceError(f"space {name}: kind: got {kind!r}, expected layerwise (the default) or cell")
    return spec


def declared_kind(name_or_path: str) -> str:
    """`layerwise` or `cell`: what a space file declares, without resolving it."""
    return str(_read_declaration(name_or_path)[2].get("kind", "layerwise"))


def load_layerwise_space(name_or_path: str, command: str, **knobs: Any) -> SpaceSpec:
    """`load_space` for commands that work on layer-wise spaces only; a cell space gets one clear line."""
    space = load_space(name_or_path, **knobs)
    if space.kind != "layerwise":
        raise SpaceError(
            f"{command}: space {space.name} is a cell space (DARTS/CNAS); search it with `hwnas search {name_or_path}`"
        )
    return space  # type: ignore[return-value]


def _field(data: dict[str, Any], key: str, where: str, expected: str, check: Any, default: Any = ...) -> Any:
    if key not in data:
        if default is ...:
            raise SpaceError(f"{where}: missing {key!r}, expected {expected}")
        return default
    value = data[key]
    if not check(value):
        raise SpaceError(f"{where}.{key}: got {value!r}, expected {expected}")
    return value


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _op_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v)


def resolve_space(name: str, origin: str, declaration: dict[str, Any], knob_values: dict[str, Any]) -> SpaceSpec:
    """Turn a declaration and knob values into concrete layers (channels, strides, shapes, candidates)."""
    where = f"space {name}"
    defaults = resolve_knobs(declaration.get("knobs"), f"{where}: knobs")
    knobs = resolve_knobs(knob_values, f"{where}: space_args", defaults)
    cfg = BlockConfig(
        activation=knobs["activation"],
        bn_eps=float(knobs["bn_eps"]),
        bn_momentum=float(knobs["bn_momentum"]),
        expand_at_e1=knobs["expand_at_e1"],
        se_ratio=float(knobs["se_ratio"]),
        norm_inside=knobs["norm"] == "inside",
    )

    def scale(c: int, at: str = where) -> int:
        width = c if knobs["width_mult"] == 1 else make_divisible(c * knobs["width_mult"], knobs["round_to"])
        return check_width(width, at)

    stem_decl = _field(
        declaration, "stem", where, "a list of {op, channels, stride}", lambda v: isinstance(v, list), []
    )
    stage_decl = _field(
        declaration,
        "stages",
        where,
        "a non-empty list of {channels, layers, stride}",
        lambda v: isinstance(v, list) and v,
    )
    head_decl = _field(declaration, "head", where, "a mapping {op, channels}", lambda v: isinstance(v, dict), {})
    default_candidates = _field(declaration, "candidates", where, "a non-empty list of op names", _op_list, None)

    for key, decl in (("stem_channels", stem_decl), ("stage_channels", stage_decl)):
        if knobs[key] is not None and len(knobs[key]) != len(decl):
            raise SpaceError(f"{where}: space_args.{key}: got {len(knobs[key])} widths, expected {len(decl)}")

    shape = tuple(knobs["input_size"])
    stem, shape = _resolve_stem(stem_decl, knobs, cfg, scale, where, shape)
    layers, shape = _resolve_stages(stage_decl, default_candidates, knobs, cfg, scale, where, shape)
    head = _resolve_head(head_decl, knobs, cfg, scale, where, shape)
    first = next((layer for layer in (*stem, *layers) if layer.stride > 1), None)
    if first is not None and min(first.input_hw) < first.stride:
        h, w = first.input_hw
        raise SpaceError(
            f"{where}: input {h}x{w} is smaller than the stride {first.stride} of the first layer that downsamples it; "
            "expected a larger input size"
        )
    _check_footprint(stem, layers, head, knobs["input_size"], where)
    return SpaceSpec(name, origin, declaration, knobs, cfg, tuple(stem), tuple(layers), head)


def _mappings(entries: list, where: str, keys: str) -> Iterator[tuple[int, dict, str]]:
    """Each entry of a declared list with its index and its place (`where[i]`); one that is not a mapping is
    refused, naming the `keys` expected."""
    for i, item in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise SpaceError(f"{at}: got {item!r}, expected a mapping {keys}")
        yield i, item, at


def _resolve_stem(
    stem_decl: list, knobs: dict[str, Any], cfg: BlockConfig, scale: Callable[..., int], where: str, shape: tuple
) -> tuple[list[FixedLayer], tuple]:
    """The stem's fixed layers, and the shape after them."""
    c, h, w = shape
    stem: list[FixedLayer] = []
    for i, item, at in _mappings(stem_decl, f"{where}: stem", "{op, channels, stride}"):
        op = _field(item, "op", at, "an op name", lambda v: isinstance(v, str))
        stride = _field(item, "stride", at, "a positive integer", _positive_int, 1)
        if i == 0 and knobs["stem_stride"] is not None:
            stride = knobs["stem_stride"]
        c_out = c  # ops without a width (pooling) keep their input's
        if "channels" in item:
            c_out = _field(item, "channels", at, "a positive integer", _positive_int)
            c_out = scale(knobs["stem_channels"][i] if knobs["stem_channels"] is not None else c_out, at)
        _check(op, c, c_out, stride, at, (h, w), cfg)
        stem.append(FixedLayer(op, c, c_out, stride, (h, w)))
        c, h, w = c_out, -(-h // stride), -(-w // stride)

    return stem, (c, h, w)


def _resolve_stages(
    stage_decl: list,
    default_candidates: list | None,
    knobs: dict[str, Any],
    cfg: BlockConfig,
    scale: Callable[..., int],
    where: str,
    shape: tuple,
) -> tuple[list[SearchLayer], tuple]:
    """The searchable layers of every stage, and the shape after them."""
    c, h, w = shape
    layers: list[SearchLayer] = []
    for s, stage, at in _mappings(stage_decl, f"{where}: stages", "{channels, layers, stride}"):
        width = _field(stage, "channels", at, "a positive integer", _positive_int)
        if knobs["stage_channels"] is not None:
            width = knobs["stage_channels"][s]
        width = scale(width, at)
        count = _field(
            stage, "layers", at, "a positive integer (at most 1000)", lambda v: _positive_int(v) and v <= 1000
        )
        first_stride = _field(stage, "stride", at, "a positive integer", _positive_int, 1)
        stage_candidates = _field(stage, "candidates", at, "a non-empty list of op names", _op_list, default_candidates)
        if stage_candidates is None:
            raise SpaceError(f"{at}: no 'candidates' here and no space-wide 'candidates', expected a list of op names")
        overrides = _field(
            stage, "overrides", at, "a mapping {layer index in stage: [ops]}", lambda v: isinstance(v, dict), {}
        )
        for key, ops in overrides.items():
            if not (isinstance(key, int) and 0 <= key < count) or not _op_list(ops):
                raise SpaceError(
                    f"{at}.overrides: got {key!r}: {ops!r}, expected a layer index in 0..{count - 1} and a list of ops"
                )
        for j in range(count):
            stride = first_stride if j == 0 else 1
            candidates = tuple(overrides.get(j, stage_candidates))
            if len(set(candidates)) != len(candidates):
                raise SpaceError(f"{at} layer {j}: candidates {list(candidates)} repeat an op")
            for op in candidates:
                _check(op, c, width, stride, f"{at} layer {j}", (h, w), cfg)
            layers.append(SearchLayer(len(layers), s, c, width, stride, (h, w), candidates))
            c, h, w = width, -(-h // stride), -(-w // stride)

    return layers, (c, h, w)


def _resolve_head(
    head_decl: dict, knobs: dict[str, Any], cfg: BlockConfig, scale: Callable[..., int], where: str, shape: tuple
) -> HeadSpec:
    """The head: its conv (when it has channels), pooling, dropout and classifier."""
    c, h, w = shape
    head_op = _field(head_decl, "op", f"{where}: head", "an op name", lambda v: isinstance(v, str), "conv_k1")
    last = _field(head_decl, "channels", f"{where}: head", "an integer >= 0", lambda v: v == 0 or _positive_int(v), 0)
    if knobs["last_channels"] is not None:
        last = knobs["last_channels"]
    if last and knobs["width_mult"] > 1:
        last = scale(last, f"{where}: head")
    check_width(last, f"{where}: head")
    if last:
        _check(head_op, c, last, 1, f"{where}: head", (h, w), cfg)
    return HeadSpec(
        head_op,
        c,
        last,
        (h, w),
        float(knobs["dropout"]),
        knobs["num_classes"],
        knobs["classifier_bias"],
        knobs["classifier"] == "cosine",
    )


def _check_footprint(
    stem: list[FixedLayer], layers: list[SearchLayer], head: HeadSpec, input_size: list[int], where: str
) -> None:
    """Estimate parameters (a 1x1 conv per layer, the classifier) and the largest feature map; refuse the absurd."""
    convs = [(x.c_in, x.c_out, x.input_hw) for x in (*stem, *layers)]
    params = sum(c_in * c_out for c_in, c_out, _ in convs)
    width = head.channels or head.c_in
    params += head.c_in * head.channels + width * head.num_classes
    activation = max(
        [input_size[0] * input_size[1] * input_size[2]] + [max(a, b) * hw[0] * hw[1] for a, b, hw in convs]
    )
    check_footprint(params, activation, where)


def _check(op: str, c_in: int, c_out: int, stride: int, where: str, hw: tuple[int, int], cfg: BlockConfig) -> None:
    """The op's name and shape check, and for a registered op its output shape at the layer's input."""
    try:
        check_op(op, c_in, c_out, stride)
        check_output_shape(op, c_in, c_out, stride, hw, cfg)
    except HwnasError as exc:
        raise SpaceError(f"{where}: {exc}") from None
