"""Weight-sharing supernets: layer-wise (one choice per layer) and DARTS cell search networks."""

from .cell_supernet import CellArchParams, CellSupernet, MixedEdge
from .choice import ChoiceLayer
from .fused import fusion
from .recomputation import recompute
from .supernet import FixedPath, Supernet
from .transfer import extract_model, path_state_dict

__all__ = [
    "CellArchParams",
    "CellSupernet",
    "ChoiceLayer",
    "FixedPath",
    "MixedEdge",
    "Supernet",
    "extract_model",
    "fusion",
    "path_state_dict",
    "recompute",
]
