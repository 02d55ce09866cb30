"""The one place op names are parsed and blocks are built: `name -> factory(c_in, c_out, stride)`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from torch import nn

from ..errors import OpNameError
from . import cell_ops, identity, inverted_residual, plain, resnet, shufflenet
from .common import BlockConfig
from .family import OpFamily, Params

FAMILIES: tuple[OpFamily, ...] = (
    inverted_residual.FAMILY,
    identity.SKIP,
    identity.ZERO,
    shufflenet.FAMILY,
    plain.CONV,
    plain.POOL,
    cell_ops.FAMILY,
    resnet.FAMILY,
)


def grammar() -> str:
    """Every op name form the registry accepts, for error messages and `--help`."""
    return "; ".join(f.grammar for f in FAMILIES)


@dataclass(frozen=True)
class ParsedOp:
    name: str
    family: OpFamily
    params: Params


def parse_op(name: str) -> ParsedOp:
    """Parse an op name; raise OpNameError naming it and showing the grammar if it is not one."""
    if not isinstance(name, str):
        raise OpNameError(f"op {name!r} is not a string; expected one of: {grammar()}")
    return _parse(name)


@cache
def _parse(name: str) -> ParsedOp:
    for family in FAMILIES:
        match = family.pattern.fullmatch(name)
        if match:
            try:
                return ParsedOp(name, family, family.parse(match.groupdict()))
            except ValueError as exc:
                raise OpNameError(f"op {name!r}: {exc}; expected {family.grammar}") from None
    raise OpNameError(f"unknown op {name!r}; expected one of: {grammar()}")


def check_op(name: str, c_in: int, c_out: int, stride: int) -> None:
    """Raise OpNameError if `name` is malformed or cannot map c_in -> c_out at this stride."""
    op = parse_op(name)
    reason = op.family.check(op.params, c_in, c_out, stride)
    if reason:
        raise OpNameError(f"op {name!r} cannot be used here: {reason}")


def build_block(name: str, c_in: int, c_out: int, stride: int, cfg: BlockConfig = BlockConfig()) -> nn.Module:
    """Build the block `name` mapping c_in -> c_out channels at `stride`."""
    check_op(name, c_in, c_out, stride)
    op = parse_op(name)
    return op.family.build(op.params, c_in, c_out, stride, cfg)
