"""Search spaces as data: built-in YAML files and the `SpaceSpec` / `CellSpaceSpec` they resolve to."""

from .cell_space import CellShape, CellSpaceSpec
from .genotype import Genotype
from .knobs import KNOBS
from .spec import (
    FixedLayer,
    HeadSpec,
    SearchLayer,
    SpaceSpec,
    builtin_spaces,
    load_layerwise_space,
    load_space,
)

__all__ = [
    "KNOBS",
    "CellShape",
    "CellSpaceSpec",
    "FixedLayer",
    "Genotype",
    "HeadSpec",
    "SearchLayer",
    "SpaceSpec",
    "builtin_spaces",
    "load_layerwise_space",
    "load_space",
]
