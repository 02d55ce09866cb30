"""Datasets from disk or from any torch Dataset, deterministic splits, resumable loaders and on-device augmentation."""

from .augment import AugmentPlan, Preprocess
from .imageset import Batch, ImageSet
from .loader import EpochLoader
from .sources import FORMATS, DataPools, open_dataset
from .splits import search_split, split, train_val
from .torch_datasets import pools_from_datasets

__all__ = [
    "FORMATS",
    "AugmentPlan",
    "Batch",
    "DataPools",
    "EpochLoader",
    "ImageSet",
    "Preprocess",
    "open_dataset",
    "pools_from_datasets",
    "search_split",
    "split",
    "train_val",
]
