"""Tiny datasets written in the real on-disk formats (CIFAR pickles, image folders, tiny-imagenet)."""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar(root: Path, hundred: bool = False, per_batch: int = 6, classes: int = 10) -> Path:
    rng = np.random.default_rng(0)
    key = b"fine_labels" if hundred else b"labels"
    if hundred:
        root = root / "cifar-100-python"
    root.mkdir(parents=True, exist_ok=True)
    names = ["train", "test"] if hundred else [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for name in names:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [i % classes for i in range(per_batch)]
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, key: labels, b"batch_label": name.encode()}, f)
    meta = (
        {b"fine_label_names": [f"c{i:02d}".encode() for i in range(classes)]}
        if hundred
        else {b"label_names": [f"class{i}".encode() for i in range(classes)]}
    )
    with open(root / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f)
    return root


def write_image(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    array[0, 0] = (255 - value, 0, value)
    Image.fromarray(array).save(path)


def write_folder(root: Path, classes: list[str], per_class: int = 3, size: tuple[int, int] = (20, 12)) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"img{i}.png", size, 40 * c + i)
    return root


def write_tiny_imagenet(root: Path, wnids: list[str], per_class: int = 2) -> Path:
    root = root / "tiny-imagenet-200"
    lines = []
    for c, wnid in enumerate(wnids):
        for i in range(per_class):
            write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64), 50 * c + i)
            name = f"val_{c}_{i}.JPEG"
            write_image(root / "val" / "images" / name, (64, 64), 50 * c + i)
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    return root
