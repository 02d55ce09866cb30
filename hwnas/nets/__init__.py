"""The plain networks hwnas builds: layer-wise (FBNet-like), cell-based (DARTS), and their heads."""

from .cells import AuxiliaryOutputs, CellNet, CellStem, cell_preprocess
from .heads import CosineClassifier
from .layerwise import ClassifierHead, LayerwiseNet, build_layer, build_stem, init_weights

__all__ = [
    "AuxiliaryOutputs",
    "CellNet",
    "CellStem",
    "ClassifierHead",
    "CosineClassifier",
    "LayerwiseNet",
    "build_layer",
    "build_stem",
    "cell_preprocess",
    "init_weights",
]
