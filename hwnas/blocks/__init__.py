"""Candidate ops, built by name through one registry (docs/design.md §4.1); users add their own with
`register_op` / `register_family` or a plugin package (entry-point group `hwnas.blocks`)."""

from .common import ACTIVATIONS, BlockConfig, DropPath, make_divisible, set_drop_path
from .family import OpFamily, Params, same_shape
from .registry import (
    BUILTIN_FAMILIES,
    ENTRY_POINT_GROUP,
    ParsedOp,
    build_block,
    builtin_op,
    check_op,
    check_output_shape,
    families_fingerprint,
    grammar,
    isolated_registry,
    load_plugins,
    parse_op,
    register_family,
    register_op,
    registered_families,
)

__all__ = [
    "ACTIVATIONS",
    "BUILTIN_FAMILIES",
    "ENTRY_POINT_GROUP",
    "BlockConfig",
    "DropPath",
    "OpFamily",
    "Params",
    "ParsedOp",
    "build_block",
    "builtin_op",
    "check_op",
    "check_output_shape",
    "families_fingerprint",
    "grammar",
    "isolated_registry",
    "load_plugins",
    "make_divisible",
    "parse_op",
    "register_family",
    "register_op",
    "registered_families",
    "same_shape",
    "set_drop_path",
]
