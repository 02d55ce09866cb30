"""Search spaces as data: built-in YAML files and the `SpaceSpec` they resolve to."""

from .knobs import KNOBS
from .spec import FixedLayer, HeadSpec, SearchLayer, SpaceSpec, builtin_spaces, load_space

__all__ = ["KNOBS", "FixedLayer", "HeadSpec", "SearchLayer", "SpaceSpec", "builtin_spaces", "load_space"]
