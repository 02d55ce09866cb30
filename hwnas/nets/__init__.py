"""The plain networks hwnas builds: layer-wise (FBNet-like), cell-based (DARTS), and their heads.

Every network follows timm's model interface (`forward_features`, `forward_head`, `reset_classifier`,
`get_classifier`, `num_classes`, `num_features`, `feature_info`, `forward_intermediates`)."""

from .backbone import feature_indices, stage_ends
from .cell_network import AuxiliaryOutputs, CellNet, CellStem, cell_preprocess
from .heads import CosineClassifier, build_classifier
from .layerwise import ClassifierHead, LayerwiseNet, build_layer, build_stem, init_weights

__all__ = [
    "AuxiliaryOutputs",
    "CellNet",
    "CellStem",
    "ClassifierHead",
    "CosineClassifier",
    "LayerwiseNet",
    "build_classifier",
    "build_layer",
    "build_stem",
    "cell_preprocess",
    "feature_indices",
    "init_weights",
    "stage_ends",
]
