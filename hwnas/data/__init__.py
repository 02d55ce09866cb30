"""Datasets from disk, deterministic splits, resumable loaders and on-device augmentation."""

from .augment import AugmentPlan, Preprocess
from .imageset import Batch, ImageSet
from .loader import EpochLoader
from .sources import FORMATS, DataPools, open_dataset
from .splits import search_split, split, train_val

__all__ = [
    "FORMATS",
    "AugmentPlan",
    "Batch",
    "DataPools",
    "EpochLoader",
    "ImageSet",
    "Preprocess",
    "open_dataset",
    "search_split",
    "split",
    "train_val",
]
