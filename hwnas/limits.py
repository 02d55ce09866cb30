"""Bounds on the sizes a space may declare, so a network that cannot fit in memory is refused before it is built."""

from __future__ import annotations

from .errors import SpaceError

MAX_INPUT_CHANNELS = 1024
MAX_INPUT_SIDE = 8192
MAX_CHANNELS = 16384
MAX_CLASSES = 1_000_000
MAX_PARAMS = 2_000_000_000  # 8 GB of float32 weights
MAX_ACTIVATION = 1 << 31  # elements of one feature map at batch 1 (8 GB of float32)


def input_size_problem(size: list[int] | tuple[int, ...]) -> str | None:
    """Why an input size [C, H, W] is too large, or None when it is within the bounds."""
    c, h, w = size
    if c > MAX_INPUT_CHANNELS:
        return f"{c} input channels, expected at most {MAX_INPUT_CHANNELS}"
    if max(h, w) > MAX_INPUT_SIDE:
        return f"a side of {max(h, w)} px, expected at most {MAX_INPUT_SIDE}"
    return None


def check_width(width: int, where: str) -> int:
    """`width` when it is at most MAX_CHANNELS; one SpaceError line otherwise."""
    if width > MAX_CHANNELS:
        raise SpaceError(f"{where}: {width:,} channels, expected at most {MAX_CHANNELS:,}")
    return width


def check_footprint(params: int, activation: int, where: str) -> None:
    """Refuse a network whose estimated parameters or largest feature map (batch 1) cannot fit in memory."""
    if params > MAX_PARAMS:
        raise SpaceError(
            f"{where}: about {params:,} parameters, expected at most {MAX_PARAMS:,} (smaller widths or fewer classes)"
        )
    if activation > MAX_ACTIVATION:
        raise SpaceError(
            f"{where}: a feature map of {activation:,} values per image, expected at most {MAX_ACTIVATION:,} "
            "(a smaller input_size or narrower layers)"
        )
