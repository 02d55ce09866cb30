"""`PretrainedCfg`: how a network's input images were made, in timm's `pretrained_cfg` terms.

    {"input_size": [1, 8, 8], "mean": [0.305], "std": [0.376], "num_classes": 10,
     "label_names": ["0", "1", ...], "crop_pct": 1.0, "crop_mode": "squash", "interpolation": "bilinear"}

`mean` and `std` hold one value per network input channel, in [0, 1] units (an image scaled to [0, 1] is
normalised as `(x - mean) / std`). `crop_mode` says how an image of another size reaches `input_size`:
`center` resizes it to cover `input_size / crop_pct` keeping its aspect ratio, then crops the centre;
`squash` resizes the whole image to `input_size / crop_pct` (the aspect ratio is not kept), then crops the
centre. With `crop_pct` 1 there is nothing left to crop in `squash`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .errors import HwnasError

CROP_MODES = ("center", "squash")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
REQUIRED = ("input_size", "mean", "std", "num_classes")
OPTIONAL = ("label_names", "crop_pct", "crop_mode", "interpolation")


@dataclass(frozen=True)
class PretrainedCfg:
    """The preprocessing a trained network expects; `from_dict` validates, `to_dict` is its JSON form."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    label_names: tuple[str, ...] | None = None
    crop_pct: float = 1.0
    crop_mode: str = "center"
    interpolation: str = "bilinear"

    @classmethod
    def for_data(
        cls,
        input_size: tuple[int, ...] | list[int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        classes: list[str],
        crop_mode: str,
    ) -> PretrainedCfg:
        """The cfg of a run's data: a 1-channel dataset's statistics repeated for a network of more channels."""
        channels = input_size[0]
        if len(mean) not in (1, channels):
            raise HwnasError(
                f"the dataset is normalised per channel for {len(mean)}-channel images (mean {list(mean)}), the "
                f"network takes {channels} channel(s); expected --input {len(mean)}x{input_size[1]}x{input_size[2]}"
            )
        repeat = channels if len(mean) == 1 else 1
        return cls(
            (int(input_size[0]), int(input_size[1]), int(input_size[2])),
            tuple(float(m) for m in mean) * repeat,
            tuple(float(s) for s in std) * repeat,
            len(classes),
            tuple(classes),
            crop_mode=crop_mode,
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "pretrained_cfg") -> PretrainedCfg:
        """Validate a decoded `pretrained_cfg` object field by field; one HwnasError line on the first fault."""
        if not isinstance(data, dict):
            raise HwnasError(f"{where}: got {_shown(data)}, expected an object with {', '.join(REQUIRED)}")
        unknown = [k for k in data if k not in (*REQUIRED, *OPTIONAL)]
        if unknown:
            raise HwnasError(
                f"{where}: unknown field {unknown[0]!r}; expected only {', '.join((*REQUIRED, *OPTIONAL))}"
            )
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise HwnasError(f"{where}: {missing[0]} is missing; expected {', '.join(REQUIRED)} at least")
        size = data["input_size"]
        if not (isinstance(size, list) and len(size) == 3 and all(_is_int(v) and v > 0 for v in size)):
            raise HwnasError(f"{where}.input_size: got {_shown(size)}, expected [C, H, W] of positive integers")
        channels = size[0]
        mean = _numbers(data["mean"], channels, lambda v: 0 <= v <= 1, "in [0, 1]", f"{where}.mean")
        std = _numbers(data["std"], channels, lambda v: 0 < v <= 1, "in (0, 1]", f"{where}.std")
        num_classes = data["num_classes"]
        if not (_is_int(num_classes) and num_classes >= 1):
            raise HwnasError(f"{where}.num_classes: got {_shown(num_classes)}, expected a positive integer")
        labels = data.get("label_names")
        if labels is not None and not (
            isinstance(labels, list) and len(labels) == num_classes and all(isinstance(n, str) for n in labels)
        ):
            raise HwnasError(
                f"{where}.label_names: got {_shown(labels)}, expected {num_classes} strings (one per class, in label "
                f"order)"
            )
        crop_pct = data.get("crop_pct", 1.0)
        if not (_is_number(crop_pct) and 0 < crop_pct <= 1):
            raise HwnasError(f"{where}.crop_pct: got {_shown(crop_pct)}, expected a number in (0, 1]")
        crop_mode = data.get("crop_mode", "center")
        if crop_mode not in CROP_MODES:
            raise HwnasError(f"{where}.crop_mode: got {_shown(crop_mode)}, expected one of {', '.join(CROP_MODES)}")
        interpolation = data.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise HwnasError(
                f"{where}.interpolation: got {_shown(interpolation)}, expected one of {', '.join(INTERPOLATIONS)}"
            )
        return cls(
            tuple(size),
            mean,
            std,
            num_classes,
            None if labels is None else tuple(labels),
            float(crop_pct),
            crop_mode,
            interpolation,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "num_classes": self.num_classes,
        }
        if self.label_names is not None:
            data["label_names"] = list(self.label_names)
        data.update(crop_pct=self.crop_pct, crop_mode=self.crop_mode, interpolation=self.interpolation)
        return data

    def check_fits(self, input_size: tuple[int, ...], num_classes: int, where: str) -> None:
        """Refuse a cfg whose input size or classes are not those of the network it describes."""
        if tuple(self.input_size) != tuple(input_size):
            raise HwnasError(
                f"{where}.input_size: got {list(self.input_size)}, expected the network's input size {list(input_size)}"
            )
        if self.num_classes != num_classes:
            raise HwnasError(
                f"{where}.num_classes: got {self.num_classes}, expected the network's {num_classes} classes"
            )

    def refit(self, input_size: tuple[int, ...], num_classes: int) -> PretrainedCfg | None:
        """The cfg of the same network at another input size (the normalisation does not depend on it); None
        when the channels or classes changed, which the recorded statistics and labels no longer describe."""
        if input_size[0] != self.input_size[0] or num_classes != self.num_classes:
            return None
        return replace(self, input_size=tuple(input_size))

    def labels(self) -> list[str]:
        """The class names, or the class indices as text when none were recorded."""
        return list(self.label_names) if self.label_names is not None else [str(i) for i in range(self.num_classes)]

    def scale_size(self) -> tuple[int, int]:
        """The (H, W) an image is resized to before the centre crop to `input_size` (timm's eval rule)."""
        _, h, w = self.input_size
        return math.floor(h / self.crop_pct), math.floor(w / self.crop_pct)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any, channels: int, ok: Callable[[float], bool], expected: str, where: str) -> tuple[float, ...]:
    if not (isinstance(values, list) and len(values) == channels and all(_is_number(v) and ok(v) for v in values)):
        raise HwnasError(
            f"{where}: got {_shown(values)}, expected {channels} number(s) {expected} (one per input channel, for "
            "images scaled to [0, 1])"
        )
    return tuple(float(v) for v in values)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
