"""Deterministic splits of an ImageSet: train/validation, and the two search splits of DNAS/DARTS."""

from __future__ import annotations

import torch

from ..errors import HwnasError
from .imageset import ImageSet


def split(pool: ImageSet, first_fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Shuffle `pool` with `seed` and cut it: the first part holds `first_fraction` of it."""
    n = len(pool)
    cut = round(n * first_fraction)
    if not 0 < cut < n:
        raise HwnasError(f"cannot split {n} images at {first_fraction}: one part would be empty")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return pool.subset(order[:cut]), pool.subset(order[cut:])


def train_val(
    train_pool: ImageSet, test_pool: ImageSet | None, val_split: float, seed: int
) -> tuple[ImageSet, ImageSet]:
    """The test pool validates when the dataset has one; else `val_split` of the training pool is held out."""
    if test_pool is not None and len(test_pool):
        return train_pool, test_pool
    train, val = split(train_pool, 1 - val_split, seed)
    return train, val


def search_split(train: ImageSet, train_portion: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Weights train on the first `train_portion` (DARTS 0.5, FBNet 0.8); architecture parameters on the rest."""
    return split(train, train_portion, seed + 1)
