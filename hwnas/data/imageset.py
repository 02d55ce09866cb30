"""`ImageSet`: labelled images as tensors, read a batch at a time (in memory, from files or from a torch Dataset)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch.utils.data import Dataset

from ..errors import HwnasError

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Batch:
    images: torch.Tensor  # uint8 [B, C, H, W] (0..255), or float32 [B, C, H, W] in [0, 1]
    labels: torch.Tensor  # int64 [B]
    positions: torch.Tensor  # int64 [B]: positions in the ImageSet (keys of per-sample augmentation)


class ImageSource(Protocol):
    """Where an ImageSet's images come from: `read(ids)` returns the images at those ids as one batch tensor."""

    def read(self, ids: torch.Tensor) -> torch.Tensor: ...


class TensorSource:
    """Images already decoded, as one uint8 tensor [N, C, H, W]."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.images[ids]


class ItemError(HwnasError):
    """An item that cannot be read, raised while reading a batch (maybe in a loader worker). A DataLoader
    worker's error comes back to the main process as the same class built from a message holding the
    worker's traceback; only its last line, ours, is kept."""

    def __init__(self, message: str) -> None:
        last = message.strip().splitlines()[-1] if message.strip() else message
        prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
        super().__init__(last.removeprefix(prefix))


class UnreadableImage(ItemError):
    """An image file that does not decode."""


def _reason(exc: BaseException) -> str:
    """Why PIL could not read a file, in words (no exception names, no repr of file objects)."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):
        return "not an image format PIL can identify"
    text = str(exc).strip()
    return text.splitlines()[0] if text else "cannot be decoded"


JPEG_END = b"\xff\xd9"
JPEG_TAIL = 1024  # a JPEG whose end-of-image marker is not in its last KiB is fully decoded to be sure


def _check_image(path: Path) -> str | None:
    """None when `path` looks like a whole image, else why not. Cheap: PIL's `verify()` (header; for PNG
    every chunk's CRC), for JPEG an end-of-image marker near the end; other formats and JPEGs without
    that marker, whose `verify()` checks little, are decoded in full."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            fmt = img.format
            img.verify()
        if fmt == "PNG" or (fmt == "JPEG" and _has_jpeg_end(path)):
            return None
        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # PIL raises many types for bad data (OSError, SyntaxError, ValueError, ...)
        return _reason(exc)
    return None


def _has_jpeg_end(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - JPEG_TAIL))
        return JPEG_END in f.read()


def unreadable_images(paths: list[Path]) -> list[tuple[Path, str]]:
    """The files among `paths` that are not whole images, with why, in the order given (read in threads)."""
    if not paths:
        return []
    workers = min(32, 2 * (os.cpu_count() or 1), len(paths))
    with ThreadPoolExecutor(workers) as pool:
        reasons = list(pool.map(_check_image, paths, chunksize=64))
    return [(path, reason) for path, reason in zip(paths, reasons, strict=True) if reason is not None]


def open_image(path: Path, channels: int) -> Image.Image:
    """The whole image at `path` as a PIL image of `channels` (1: grey, else RGB); `UnreadableImage` if it does
    not decode."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("L" if channels == 1 else "RGB")
    except Exception as exc:  # PIL's errors for bad data are of many types
        raise UnreadableImage(f"{path}: unreadable image ({_reason(exc)})") from None


def cover_and_crop(img: Image.Image, cover: tuple[int, int], size: tuple[int, int], resample: int) -> Image.Image:
    """`img` resized (PIL filter `resample`) to cover `cover` (H, W) keeping its aspect ratio, then the centre
    `size` (H, W) cropped out: with `cover` equal to `size`, the short side resized and centre-cropped."""
    h, w = size
    scale = max(cover[0] / img.height, cover[1] / img.width)
    img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))), resample)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image of 8-bit bands as uint8 [C, H, W]."""
    channels = len(img.getbands())
    data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return data.reshape(img.height, img.width, channels).permute(2, 0, 1)


class FileSource:
    """Image files decoded on demand (in loader workers): resized on the short side (bilinear), centre-cropped.

    A file that fails to decode raises `UnreadableImage` naming it (one line, also from a worker)."""

    def __init__(self, paths: list[Path], size: tuple[int, int], channels: int) -> None:
        self.paths = paths
        self.size = size
        self.channels = channels

    def _decode(self, path: Path) -> torch.Tensor:
        from PIL import Image

        img = open_image(path, self.channels)
        return pil_to_tensor(cover_and_crop(img, self.size, self.size, Image.BILINEAR))

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._decode(self.paths[int(i)]) for i in ids])


class ImageSet(Dataset):
    """A view (`index`) of labelled images; `subset` narrows the view without copying images."""

    def __init__(self, source: ImageSource, labels: torch.Tensor, index: torch.Tensor | None = None):
        self.source = source
        self.labels = labels
        self.index = torch.arange(len(labels)) if index is None else index

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, positions: torch.Tensor) -> ImageSet:
        return ImageSet(self.source, self.labels, self.index[positions])

    def targets(self) -> torch.Tensor:
        return self.labels[self.index]

    def __getitems__(self, positions: list[int]) -> Batch:
        pos = torch.as_tensor(positions, dtype=torch.long)
        ids = self.index[pos]
        return Batch(self.source.read(ids), self.labels[ids], pos)

    def __getitem__(self, position: int) -> Batch:
        return self.__getitems__([position])
