"""Any map-style torch `Dataset` (or a `DataLoader`'s dataset) as a run's data, beside the `--data` specs.

`pools_from_datasets(train, test)` returns the same `DataPools` as `open_dataset`, so `train_val`,
`search_split`, `EpochLoader` and `Preprocess` (augmentation included) work on it unchanged. Items are
read by index when a batch needs them (`DatasetSource`): a large dataset is never held in memory.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset

from ..errors import HwnasError
from .imageset import ImageSet, ItemError
from .sources import DataPools

logger = logging.getLogger(__name__)

STATS_IMAGES = 512  # mean/std, when not given, are estimated from the first this many training images
STATS_CHUNK = 64
ITEM_FORM = "(image, label) with image a tensor [C, H, W] (uint8 0..255, or float in [0, 1]) or a PIL image"
PIL_8BIT_MODES = {"1", "L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


class BadDatasetItem(ItemError):
    """An item of a caller's dataset that is not `(image, label)` of the dataset's one image shape and kind."""


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)


def kind_text(dtype: torch.dtype) -> str:
    return "uint8" if dtype == torch.uint8 else "float"


def image_tensor(image: Any, where: str) -> torch.Tensor:
    """`image` as a [C, H, W] tensor: uint8 kept, float as float32, a PIL image converted as torchvision's
    `ToTensor` does (without its division by 255: uint8 is scaled by `Preprocess`, the same figures)."""
    from PIL import Image

    if torch.is_tensor(image):
        tensor = image.detach().cpu()
    elif isinstance(image, Image.Image):
        tensor = pil_tensor(image, where)
    else:
        raise BadDatasetItem(f"{where}: the image is a {type(image).__name__}; expected {ITEM_FORM}")
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3 or tensor.numel() == 0:
        raise BadDatasetItem(
            f"{where}: the image tensor has shape {shape_text(tensor.shape) or 'scalar'}; expected [C, H, W] "
            "(or [H, W] for one channel)"
        )
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.is_floating_point():
        tensor = tensor.float()
        low, high = float(tensor.min()), float(tensor.max())
        if not (low >= 0 and high <= 1):
            raise BadDatasetItem(
                f"{where}: float image values span [{low:.4g}, {high:.4g}]; expected values in [0, 1] "
                "(like torchvision's ToTensor, before any Normalize: hwnas normalises by mean/std itself)"
            )
        return tensor
    raise BadDatasetItem(f"{where}: the image tensor is {tensor.dtype}; expected uint8 (0..255) or float (0..1)")


def pil_tensor(image: Any, where: str) -> torch.Tensor:
    """A PIL image as uint8 [C, H, W], bands as channels. Mode 1 becomes 0/255; palette images their colours
    (RGB, or RGBA with transparency), not ToTensor's palette indices."""
    mode = image.mode
    if mode == "1":
        image = image.convert("L")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode not in PIL_8BIT_MODES:
        raise BadDatasetItem(
            f"{where}: a PIL image of mode {mode!r}; expected 8 bits a band (L, RGB, RGBA, ...): convert it first, "
            "e.g. image.convert('L')"
        )
    channels = len(image.getbands())
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.reshape(image.height, image.width, channels).permute(2, 0, 1).contiguous()


def label_value(label: Any, where: str) -> int:
    """An item's label as an int: a Python or numpy integer, or a 0-d integer tensor."""
    if torch.is_tensor(label):
        if label.dim() == 0 and not label.is_floating_point() and not label.is_complex() and label.dtype != torch.bool:
            return int(label)
    elif isinstance(label, numbers.Integral) and not isinstance(label, bool):
        return int(label)
    shown = f"a tensor of shape [{shape_text(label.shape)}]" if torch.is_tensor(label) else repr(label)[:40]
    raise BadDatasetItem(f"{where}: the label is {shown}; expected an integer (int, or a 0-d integer tensor)")


def item_parts(item: Any, where: str) -> tuple[Any, Any]:
    """The image and the label of one item, which must be a pair."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    size = f"{len(item)}-element " if isinstance(item, (tuple, list)) else ""
    raise BadDatasetItem(f"{where}: the item is a {size}{type(item).__name__}; expected {ITEM_FORM}")


class DatasetSource:
    """Images of a caller's map-style dataset, read by index when a batch needs them.

    Every image must have `shape` and `dtype` (uint8, or float32 in [0, 1]), those of the dataset's first
    item; every label must agree with the one listed in `labels`. An item that does not raises
    `BadDatasetItem` naming its index (one line, also from a loader worker). The dataset travels to
    loader workers (`--workers`), so it must pickle where workers are spawned rather than forked."""

    def __init__(
        self, dataset: Any, role: str, shape: tuple[int, int, int], dtype: torch.dtype, labels: torch.Tensor
    ) -> None:
        self.dataset = dataset
        self.role = role
        self.shape = shape
        self.dtype = dtype
        self.labels = labels

    def image(self, index: int) -> torch.Tensor:
        """Item `index`'s image, checked against the dataset's shape, kind and listed label."""
        where = f"{self.role} dataset item {index}"
        image, label = item_parts(self.dataset[index], where)
        tensor = image_tensor(image, where)
        if tuple(tensor.shape) != self.shape or tensor.dtype != self.dtype:
            raise BadDatasetItem(
                f"{where}: a {shape_text(tensor.shape)} {kind_text(tensor.dtype)} image; expected "
                f"{shape_text(self.shape)} {kind_text(self.dtype)} like the train dataset's item 0 (one shape and "
                "kind for all images)"
            )
        value = label_value(label, where)
        if value != int(self.labels[index]):
            raise BadDatasetItem(
                f"{where}: label {value}, but the dataset's label list says {int(self.labels[index])}; expected "
                "the items and their `targets`/`labels` attribute to agree"
            )
        return tensor

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        if len(ids) == 0:
            return torch.empty((0, *self.shape), dtype=self.dtype)
        return torch.stack([self.image(int(i)) for i in ids])


def map_style(data: Any, role: str) -> Any:
    """The map-style dataset behind `data` (a DataLoader's `.dataset`), or a one-line refusal."""
    if isinstance(data, DataLoader):
        data = data.dataset
    if isinstance(data, IterableDataset):
        raise HwnasError(
            f"{role} dataset: an IterableDataset has no random access; expected a map-style Dataset "
            "(__len__ and __getitem__), so that sampling can be seeded, sharded and resumed"
        )
    missing = [name for name in ("__len__", "__getitem__") if not hasattr(data, name)]
    if missing:
        raise HwnasError(
            f"{role} dataset: a {type(data).__name__} has no {' or '.join(missing)}; expected a map-style Dataset "
            "(__len__ and __getitem__) or a DataLoader over one"
        )
    if len(data) == 0:
        raise HwnasError(f"{role} dataset: it is empty; expected at least one {ITEM_FORM}")
    return data


def listed_labels(dataset: Any) -> torch.Tensor | None:
    """Labels the dataset lists without reading its images: a `targets` or `labels` attribute holding one
    integer per item, a TensorDataset's second tensor, or those of a Subset's parent; else None."""
    if isinstance(dataset, Subset):
        parent = listed_labels(dataset.dataset)
        return None if parent is None else parent[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    candidates = [getattr(dataset, name, None) for name in ("targets", "labels")]
    if type(dataset) is TensorDataset and len(dataset.tensors) == 2:
        candidates.append(dataset.tensors[1])
    for found in candidates:
        labels = integer_labels(found, len(dataset))
        if labels is not None:
            return labels
    return None


def integer_labels(values: Any, count: int) -> torch.Tensor | None:
    """`values` as int64 [count] when it is a sequence, array or tensor of `count` integers; else None."""
    if values is None or isinstance(values, (str, bytes)):
        return None
    try:
        labels = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError):
        return None
    if labels.shape != (count,) or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        return None
    return labels.long()


def read_labels(dataset: Any, role: str) -> torch.Tensor:
    """Every item's label: listed by the dataset (see `listed_labels`), else read by iterating it once."""
    labels = listed_labels(dataset)
    if labels is not None:
        return labels
    logger.info(
        "%s dataset: no `targets` or `labels` attribute listing one integer per item; reading its %d items "
        "once for their labels",
        role,
        len(dataset),
    )
    values = []
    for index in range(len(dataset)):
        where = f"{role} dataset item {index}"
        values.append(label_value(item_parts(dataset[index], where)[1], where))
    return torch.tensor(values, dtype=torch.long)


def check_labels(labels: torch.Tensor, classes: int, role: str) -> None:
    """Refuse the first label outside 0..classes-1, naming its item."""
    bad = torch.nonzero((labels < 0) | (labels >= classes)).flatten()
    if len(bad):
        first = int(bad[0])
        raise HwnasError(
            f"{role} dataset item {first}: label {int(labels[first])} is outside 0..{classes - 1}; expected a "
            f"class index of the {classes} classes"
        )


def dataset_classes(dataset: Any) -> list[str] | None:
    """The class names a dataset declares in a `classes` attribute (a non-empty list of names, as torchvision's
    datasets have; through a `Subset`, its parent's), else None."""
    if isinstance(dataset, Subset):
        return dataset_classes(dataset.dataset)
    names = getattr(dataset, "classes", None)
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


def class_names(classes: int | Sequence[str] | None, labels: list[torch.Tensor]) -> list[str]:
    """The class names: those given, `classes` numbered names, or one per label 0..the largest label."""
    if classes is None:
        largest = max(int(t.max()) for t in labels)
        return [str(i) for i in range(max(largest, 0) + 1)]
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        if classes < 1:
            raise HwnasError(f"classes={classes}: expected a positive number of classes or a list of names")
        return [str(i) for i in range(int(classes))]
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise HwnasError(f"classes={classes!r}: expected a positive number of classes or a non-empty list of names")
    return [str(name) for name in classes]


def estimated_stats(source: DatasetSource, count: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the first `count` images, in [0, 1] units (a constant channel gets std 1)."""
    total = torch.zeros(source.shape[0], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, count, STATS_CHUNK):
        images = source.read(torch.arange(start, min(start + STATS_CHUNK, count))).double()
        if source.dtype == torch.uint8:
            images /= 255
        total += images.sum((0, 2, 3))
        squares += images.square().sum((0, 2, 3))
    pixels = count * source.shape[1] * source.shape[2]
    mean = total / pixels
    std = (squares / pixels - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(s if s > 1e-6 else 1.0 for s in std.tolist())


def checked_stats(name: str, values: Sequence[float], channels: int) -> tuple[float, ...]:
    """A given `mean` or `std`: one number a channel (or one for all), std positive."""
    try:
        parsed = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        parsed = ()
    if len(parsed) not in (1, channels) or (name == "std" and not all(v > 0 for v in parsed)):
        need = "positive numbers" if name == "std" else "numbers"
        raise HwnasError(f"{name}={values!r}: expected {channels} {need} (one per image channel) or 1")
    return parsed


def first_image(dataset: Any, role: str) -> torch.Tensor:
    where = f"{role} dataset item 0"
    image, label = item_parts(dataset[0], where)
    label_value(label, where)
    return image_tensor(image, where)


def check_like_train(test_first: torch.Tensor, train_first: torch.Tensor) -> None:
    """The test dataset's images must have the train dataset's shape and kind."""
    if test_first.shape != train_first.shape or test_first.dtype != train_first.dtype:
        raise HwnasError(
            f"test dataset item 0: a {shape_text(test_first.shape)} {kind_text(test_first.dtype)} image; "
            f"expected {shape_text(train_first.shape)} {kind_text(train_first.dtype)} like the train dataset's item 0"
        )


def pools_from_datasets(
    train: Dataset | DataLoader,
    test: Dataset | DataLoader | None = None,
    *,
    classes: int | Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_shape: Sequence[int] | None = None,
) -> DataPools:
    """A run's data from map-style torch datasets whose items are `(image, label)`.

    `image`: a tensor [C, H, W] ([H, W]: one channel), uint8 in 0..255 or float in [0, 1] (as torchvision's
    `ToTensor` gives, before any `Normalize`: hwnas normalises by `mean`/`std` itself and keeps float images
    float), or a PIL image (read as `ToTensor` would). Every image has the first item's shape and kind;
    `image_shape`, when given, must be that shape. `label`: an int or a 0-d integer tensor.

    A `DataLoader` may be given for either: only its `.dataset` is used. Its batching, sampling and workers
    are replaced by hwnas's own seeded sampling (`EpochLoader`, `--batch-size`, `--workers`), so a resumed
    run sees exactly the batches an uninterrupted one would, and every DDP rank reads its own shard.

    Labels are taken from the dataset's `targets` or `labels` attribute (a TensorDataset's second tensor;
    through a `Subset`, its parent's) when that lists one integer per item, else read by iterating the
    dataset once; images are read only when a batch needs them (checked then: a mismatch names the item).
    `classes`: a number or a list of names (default: the dataset's `classes` attribute, a list of names as
    torchvision's datasets have; else one class per label 0..the largest label seen, which a run then requires
    to be the network's own number of classes); a label outside them is refused. `mean`/`std` per channel in
    [0, 1] units (default: estimated from the first 512 training images). `test=None`: runs hold out part of
    the training set for validation. A run refuses images of another size than the network's input unless
    `input=` names the size to train at (see `pipeline.check_caller_pools`).
    """
    train_set = map_style(train, "train")
    test_set = None if test is None else map_style(test, "test")
    first = first_image(train_set, "train")
    shape = tuple(first.shape)
    if image_shape is not None and tuple(image_shape) != shape:
        raise HwnasError(
            f"image_shape {shape_text(image_shape)}: the train dataset's images are {shape_text(shape)} "
            "(its item 0); expected them to match"
        )
    if test_set is not None:
        check_like_train(first_image(test_set, "test"), first)
    given_mean = None if mean is None else checked_stats("mean", mean, shape[0])
    given_std = None if std is None else checked_stats("std", std, shape[0])
    roles = {"train": train_set} if test_set is None else {"train": train_set, "test": test_set}
    labels = {role: read_labels(dataset, role) for role, dataset in roles.items()}
    declared = classes if classes is not None else dataset_classes(train_set)
    names = class_names(declared, list(labels.values()))
    for role, found in labels.items():
        check_labels(found, len(names), role)
    sets = {
        role: ImageSet(DatasetSource(dataset, role, shape, first.dtype, labels[role]), labels[role])
        for role, dataset in roles.items()
    }
    if given_mean is None or given_std is None:
        estimated = estimated_stats(sets["train"].source, min(STATS_IMAGES, len(train_set)))
        given_mean, given_std = given_mean or estimated[0], given_std or estimated[1]
    return DataPools(sets["train"], sets.get("test"), names, given_mean, given_std, declared is None)
