"""The knobs every layer-wise space accepts: what each means, its type, and its check."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..blocks import ACTIVATIONS
from ..errors import SpaceError
from ..limits import MAX_CHANNELS, MAX_CLASSES, MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive_ints(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_is_int(x) and x > 0 for x in v)


def _widths(v: Any) -> bool:
    return _positive_ints(v) and max(v) <= MAX_CHANNELS


def input_size_ok(v: Any) -> bool:
    """A list [C, H, W] of positive integers within the bounds of `limits`."""
    return _positive_ints(v) and len(v) == 3 and input_size_problem(v) is None


INPUT_SIZE_EXPECTED = (
    f"a list [channels, height, width] of positive integers, channels at most {MAX_INPUT_CHANNELS}, "
    f"sides at most {MAX_INPUT_SIDE}"
)


@dataclass(frozen=True)
class Knob:
    expected: str
    valid: Callable[[Any], bool]
    default: Any
    help: str


KNOBS: dict[str, Knob] = {
    "input_size": Knob(
        INPUT_SIZE_EXPECTED,
        input_size_ok,
        [3, 224, 224],
        "input tensor shape of one image",
    ),
    "num_classes": Knob(
        f"an integer >= 1 (at most {MAX_CLASSES:,})",
        lambda v: _is_int(v) and 1 <= v <= MAX_CLASSES,
        1000,
        "classifier outputs",
    ),
    "width_mult": Knob(
        "a number > 0 (finite, at most 64)", lambda v: _is_number(v) and 0 < v <= 64, 1.0, "scales every width"
    ),
    "round_to": Knob(
        "an integer in 1..1024",
        lambda v: _is_int(v) and 1 <= v <= 1024,
        8,
        "scaled widths are rounded to a multiple of this",
    ),
    "stem_stride": Knob(
        "null, 1 or 2", lambda v: v is None or (v in (1, 2) and _is_int(v)), None, "stride of the first stem layer"
    ),
    "activation": Knob(
        f"one of {', '.join(ACTIVATIONS)}", lambda v: v in ACTIVATIONS, "relu", "activation in every block"
    ),
    "bn_eps": Knob("a number > 0", lambda v: _is_number(v) and v > 0, 1e-5, "BatchNorm epsilon"),
    "bn_momentum": Knob("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1, 0.1, "BatchNorm momentum"),
    "expand_at_e1": Knob(
        "true or false", lambda v: isinstance(v, bool), True, "keep the 1x1 expansion conv of ir_k*_e1 ops"
    ),
    "norm": Knob(
        "inside or outside",
        lambda v: v in ("inside", "outside"),
        "inside",
        "BatchNorm inside the searchable blocks (usual), or none inside and one after each block "
        "(the MXNet FBNet code)",
    ),
    "se_ratio": Knob("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1, 0.25, "squeeze-excite bottleneck"),
    "stem_channels": Knob(
        f"null or a list of positive integers up to {MAX_CHANNELS}, one per stem layer",
        lambda v: v is None or _widths(v),
        None,
        "replaces the declared stem widths",
    ),
    "stage_channels": Knob(
        f"null or a list of positive integers up to {MAX_CHANNELS}, one per stage",
        lambda v: v is None or _widths(v),
        None,
        "replaces the declared stage widths",
    ),
    "last_channels": Knob(
        f"null or an integer in 0..{MAX_CHANNELS} (0: no last conv)",
        lambda v: v is None or (_is_int(v) and 0 <= v <= MAX_CHANNELS),
        None,
        "replaces the declared width of the head's last conv",
    ),
    "dropout": Knob("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1, 0.0, "dropout before the classifier"),
    "classifier": Knob(
        "linear or cosine",
        lambda v: v in ("linear", "cosine"),
        "linear",
        "the final classifier: linear, or cosine similarity to class weights (AM-Softmax, ArcFace heads)",
    ),
    "classifier_bias": Knob("true or false", lambda v: isinstance(v, bool), True, "bias in the final linear layer"),
}


def resolve_knobs(values: Any, where: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check `values` (a mapping of knob -> value) and lay it over `base` (the global defaults if None)."""
    resolved = dict(base) if base is not None else {name: knob.default for name, knob in KNOBS.items()}
    if values is None:
        return resolved
    if not isinstance(values, dict):
        raise SpaceError(f"{where}: got {values!r}, expected a mapping of knob names to values")
    for name, value in values.items():
        knob = KNOBS.get(name)
        if knob is None:
            raise SpaceError(f"{where}: unknown knob {name!r}; expected one of {', '.join(KNOBS)}")
        if not knob.valid(value):
            raise SpaceError(f"{where}.{name}: got {value!r}, expected {knob.expected}")
        resolved[name] = value
    return resolved


class InputSized:
    """What every space (layer-wise or cells) says of its input: `knobs["input_size"]` as (C, H, W)."""

    knobs: dict[str, Any]

    @property
    def input_size(self) -> tuple[int, int, int]:
        return tuple(self.knobs["input_size"])  # type: ignore[return-value]
