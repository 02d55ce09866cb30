"""`ImageSet`: labelled images as uint8 tensors, read a batch at a time (in memory or from files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class Batch:
    images: torch.Tensor  # uint8 [B, C, H, W]
    labels: torch.Tensor  # int64 [B]
    positions: torch.Tensor  # int64 [B]: positions in the ImageSet (keys of per-sample augmentation)


class TensorSource:
    """Images already decoded, as one uint8 tensor [N, C, H, W]."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return self.images[ids]


class FileSource:
    """Image files decoded on demand (in loader workers): resized on the short side, centre-cropped."""

    def __init__(self, paths: list[Path], size: tuple[int, int], channels: int) -> None:
        self.paths = paths
        self.size = size
        self.channels = channels

    def _decode(self, path: Path) -> torch.Tensor:
        from PIL import Image

        h, w = self.size
        with Image.open(path) as img:
            img = img.convert("L" if self.channels == 1 else "RGB")
            scale = max(h / img.height, w / img.width)
            img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))), Image.BILINEAR)
            left, top = (img.width - w) // 2, (img.height - h) // 2
            img = img.crop((left, top, left + w, top + h))
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        return data.reshape(h, w, self.channels).permute(2, 0, 1)

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._decode(self.paths[int(i)]) for i in ids])


class ImageSet(Dataset):
    """A view (`index`) of labelled images; `subset` narrows the view without copying images."""

    def __init__(self, source: TensorSource | FileSource, labels: torch.Tensor, index: torch.Tensor | None = None):
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
