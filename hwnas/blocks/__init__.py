"""Candidate ops, built by name through one registry (DESIGN 3.1)."""

from .common import ACTIVATIONS, BlockConfig, DropPath, make_divisible, set_drop_path
from .registry import FAMILIES, ParsedOp, build_block, check_op, grammar, parse_op

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "BlockConfig",
    "DropPath",
    "ParsedOp",
    "build_block",
    "check_op",
    "grammar",
    "make_divisible",
    "parse_op",
    "set_drop_path",
]
