"""Whether a run's data fits the network it trains: the images' size and the number of classes.

Images. `Preprocess` resizes every batch on the device to the run's input size. For a caller's own
dataset that resize happens only when the caller asked for a size (`input=`): images of another size
than the network's input are refused otherwise, and an asked-for resize comes with a "data reshaped"
warning. A `--data` spec whose images have a size of their own (digits 1x8x8, CIFAR 3x32x32) resized to
the network's input without `--input` gets the same warning; image folders are decoded at the run's
size by design.

Classes. The classifier has the data's classes. A `--data` spec names its classes, and so does a caller
who passes `classes=` to `pools_from_datasets` or whose dataset has a `classes` attribute; classes only
inferred from the labels seen (0..the largest) must be the network's own number, or the run is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HwnasError
from .sources import DataPools
from .torch_datasets import shape_text


def stored_shape(pools: DataPools) -> list[int]:
    """C, H, W of the pools' images as read, before `Preprocess` resizes them to the run's input."""
    return list(pools.train[0].images.shape[1:])


def check_image_size(pools: DataPools, shape: Sequence[int], asked: bool, spec: str | None) -> str | None:
    """Refuse a caller's images of another size than the network's input when no size was asked for; return
    the "data reshaped" warning where images are resized (None: nothing to say).

    `shape`: the run's input; `asked`: it came from `input=` / `--input`; `spec`: the `--data` spec, or None
    for a caller's dataset."""
    have = stored_shape(pools)
    if have[1:] == list(shape[1:]):
        return None
    own, run = shape_text(have), shape_text(shape)
    if spec is None:
        if not asked:
            raise HwnasError(
                f"the dataset's images are {own}, the network's input is {run}; give input=\"{own}\" to fit the "
                f'network to them, or input="{run}" to resize them to it'
            )
        return f'data reshaped: the dataset\'s {own} images are resized to {run} (input="{run}") as batches are read'
    if asked:
        return None
    return (
        f"data reshaped: --data {spec} holds {own} images, resized to {run}, the network's input size; ask for a "
        f"size with --input (input= in Python): {run} for this one, {own} for the data's own"
    )


def check_classes(pools: DataPools | None, classes: Sequence[str], declared: int) -> str | None:
    """Refuse classes inferred from labels that are not the network's `declared` number; return a note when
    named classes change the classifier's size (None: it keeps its size)."""
    found = len(classes)
    if found == declared:
        return None
    if pools is not None and pools.classes_from_labels:
        keep = f" (or classes={declared} to keep the network's)" if found < declared else ""
        raise HwnasError(
            f"the dataset's largest label is {found - 1}, so {found} classes; the network has {declared}. Name the "
            f"classes: pools_from_datasets(data, classes={found}) for a {found}-class classifier{keep}, or give the "
            f"dataset a `classes` attribute listing them"
        )
    return f"the classifier has the data's {found} classes (the architecture declares {declared})"
