"""Weight-sharing supernets over layer-wise spaces."""

from .choice import ChoiceLayer
from .supernet import FixedPath, Supernet
from .transfer import extract_model, path_state_dict

__all__ = ["ChoiceLayer", "FixedPath", "Supernet", "extract_model", "path_state_dict"]
