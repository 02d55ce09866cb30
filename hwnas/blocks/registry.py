"""The one place op names are parsed and blocks are built: `name -> factory(c_in, c_out, stride)`.

Users add ops without editing hwnas: `register_family` (a whole family of names), `register_op`
(a decorator for one fixed name), or a plugin package declaring an entry point in the group
`hwnas.blocks` (loaded at the registry's first use).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..errors import HwnasError, OpNameError
from . import cell_ops, identity, inverted_residual, plain, resnet, shufflenet
from .common import BlockConfig
from .family import OpFamily, Params, example_names

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hwnas.blocks"

BUILTIN_FAMILIES: tuple[OpFamily, ...] = (
    inverted_residual.FAMILY,
    identity.SKIP,
    identity.ZERO,
    shufflenet.FAMILY,
    plain.CONV,
    plain.POOL,
    cell_ops.FAMILY,
    resnet.FAMILY,
)

BUILTIN_IDS = frozenset(id(family) for family in BUILTIN_FAMILIES)

OP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

BlockFactory = Callable[[int, int, int, BlockConfig], nn.Module]
ShapeCheck = Callable[[int, int, int], str | None]


@dataclass
class _Registry:
    families: list[OpFamily] = field(default_factory=lambda: list(BUILTIN_FAMILIES))
    loaded_plugins: set[str] = field(default_factory=set)
    plugins_scanned: bool = False
    plugin_error: str | None = None

    def copy(self) -> _Registry:
        return _Registry(list(self.families), set(self.loaded_plugins), self.plugins_scanned, self.plugin_error)


_registry = _Registry()


def register_family(family: OpFamily) -> OpFamily:
    """Add a family of op names; refuse (OpNameError) a family name or an op name that is already taken."""
    if not isinstance(family, OpFamily):
        raise OpNameError(f"cannot register {family!r}: expected an hwnas.blocks.OpFamily")
    if not isinstance(family.pattern, re.Pattern):
        raise OpNameError(f"op family {family.name!r}: pattern {family.pattern!r} is not a compiled re.Pattern")
    for other in _registry.families:
        taken = next((n for n in example_names(family) if other.pattern.fullmatch(n)), None)
        taken = taken or next((n for n in example_names(other) if family.pattern.fullmatch(n)), None)
        if taken:
            raise OpNameError(
                f"cannot register {family.name!r} ({family.grammar}): "
                f"op {taken!r} is already taken by family {other.name!r} ({other.grammar})"
            )
        if other.name == family.name:
            raise OpNameError(
                f"cannot register {family.name!r} ({family.grammar}): "
                f"a family of that name is already registered ({other.grammar})"
            )
    _registry.families.append(family)
    _parse.cache_clear()
    return family


def register_op(
    name: str, *, check: ShapeCheck | None = None, grammar: str | None = None
) -> Callable[[BlockFactory], BlockFactory]:
    """Decorator: register `factory(c_in, c_out, stride, cfg) -> nn.Module` as the op `name`.

    `check(c_in, c_out, stride)` returns why the op cannot sit at a layer of that shape, or None
    (e.g. `hwnas.blocks.same_shape`); `grammar` is how the name is shown to users (default: the name).
    """
    if not isinstance(name, str) or not OP_NAME.fullmatch(name):
        raise OpNameError(f"op name {name!r} is not valid; expected letters, digits and _, starting with a letter")

    def decorate(factory: BlockFactory) -> BlockFactory:
        def build(params: Params, c_in: int, c_out: int, stride: int, cfg: BlockConfig) -> nn.Module:
            return factory(c_in, c_out, stride, cfg)

        build.__wrapped__ = factory  # type: ignore[attr-defined]  # so families_fingerprint finds its source
        shape_check = {"check": lambda params, c_in, c_out, stride: check(c_in, c_out, stride)} if check else {}
        pattern = re.compile(re.escape(name))
        register_family(OpFamily(name=name, grammar=grammar or name, pattern=pattern, build=build, **shape_check))
        return factory

    return decorate


def registered_families() -> tuple[OpFamily, ...]:
    """Every op family the registry knows: the built-in ones, then those registered (plugins included)."""
    _ensure_plugins()
    return tuple(_registry.families)


def load_plugins() -> None:
    """Register the ops of every installed plugin (entry-point group `hwnas.blocks`) not loaded yet.

    Done by itself at the registry's first use. A plugin that fails raises HwnasError naming it, then and
    at every later use of the registry, until `load_plugins` runs again without failing.
    """
    _registry.plugins_scanned = True
    _registry.plugin_error = None
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        key = f"{entry.name} = {entry.value}"
        if key in _registry.loaded_plugins:
            continue
        try:
            _load_plugin(entry)
        except Exception as exc:  # a plugin's import or registration can raise anything
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _registry.plugin_error = (
                f"op plugin {entry.name!r} ({entry.value}, entry-point group {ENTRY_POINT_GROUP}) failed to load: "
                f"{type(exc).__name__}: {detail}"
            )
            raise HwnasError(_registry.plugin_error) from None
        _registry.loaded_plugins.add(key)
        log.debug("loaded op plugin %s", key)


def _load_plugin(entry: EntryPoint) -> None:
    """Register what an entry point names: a module (importing it registered its ops), an OpFamily, a list
    of them, or a function taking no arguments that registers ops (or returns families)."""
    loaded: Any = entry.load()
    if isinstance(loaded, ModuleType):
        return
    if callable(loaded):
        loaded = loaded()
    families = [] if loaded is None else [loaded] if isinstance(loaded, OpFamily) else loaded
    if not isinstance(families, list | tuple) or not all(isinstance(f, OpFamily) for f in families):
        raise TypeError(
            f"it gave an object of type {type(loaded).__name__!r}; expected a module, an OpFamily, a list of them, "
            "or a function that registers ops"
        )
    for family in families:
        register_family(family)


def _ensure_plugins() -> None:
    if not _registry.plugins_scanned:
        load_plugins()
    elif _registry.plugin_error:
        raise HwnasError(_registry.plugin_error)


def families_fingerprint() -> str:
    """Hash of the source files of every op family registered beyond the built-in ones (plugins included):
    results cached for those ops (latency tables) change when their code does."""
    digest = hashlib.sha256()
    for family in registered_families()[len(BUILTIN_FAMILIES) :]:
        digest.update(f"{family.name}\0{family.pattern.pattern}\0".encode())
        with suppress(TypeError, OSError):  # a built-in or interactively defined function has no source file
            source = inspect.getsourcefile(inspect.unwrap(family.build))
            if source:
                digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:12]


@contextmanager
def isolated_registry() -> Iterator[None]:
    """Undo, at the end of the block, every op registered and plugin loaded inside it (for tests and notebooks).

    Installed plugins are looked up again at the registry's first use inside the block.
    """
    global _registry
    saved = _registry
    _registry = saved.copy()
    _registry.plugins_scanned = False
    _parse.cache_clear()
    try:
        yield
    finally:
        _registry = saved
        _parse.cache_clear()


def grammar() -> str:
    """Every op name form the registry accepts, for error messages and `--help`."""
    return "; ".join(f.grammar for f in registered_families())


@dataclass(frozen=True)
class ParsedOp:
    name: str
    family: OpFamily
    params: Params


def parse_op(name: str) -> ParsedOp:
    """Parse an op name; raise OpNameError naming it and showing the grammar if it is not one."""
    if not isinstance(name, str):
        raise OpNameError(f"op {name!r} is not a string; expected one of: {grammar()}")
    _ensure_plugins()
    return _parse(name)


@cache
def _parse(name: str) -> ParsedOp:
    matches = [(family, match) for family in _registry.families if (match := family.pattern.fullmatch(name))]
    if len(matches) > 1:
        a, b = (family for family, _ in matches[:2])
        raise OpNameError(f"op {name!r} is ambiguous: both family {a.name!r} ({a.grammar}) and {b.name!r} accept it")
    if not matches:
        raise OpNameError(f"unknown op {name!r}; expected one of: {grammar()}")
    family, match = matches[0]
    try:
        return ParsedOp(name, family, family.parse(match.groupdict()))
    except ValueError as exc:
        raise OpNameError(f"op {name!r}: {exc}; expected {family.grammar}") from None


def check_op(name: str, c_in: int, c_out: int, stride: int) -> None:
    """Raise OpNameError if `name` is malformed or cannot map c_in -> c_out at this stride."""
    op = parse_op(name)
    reason = op.family.check(op.params, c_in, c_out, stride)
    if reason:
        raise OpNameError(f"op {name!r} cannot be used here: {reason}")


def builtin_op(name: str) -> bool:
    """Whether the op `name` is one of hwnas's own (not registered by a user or a plugin)."""
    return id(parse_op(name).family) in BUILTIN_IDS


def check_output_shape(
    name: str, c_in: int, c_out: int, stride: int, input_hw: tuple[int, int], cfg: BlockConfig = BlockConfig()
) -> None:
    """Raise OpNameError if a registered op (built-in ones are right by construction) does not map a
    c_in x H x W input to c_out x ceil(H/stride) x ceil(W/stride), the shape its layer passes on. The op is
    built and run on the `meta` device (shapes only, no compute), on the CPU where meta cannot run it."""
    if builtin_op(name):
        return
    problem = _output_problem(parse_op(name).family, name, c_in, c_out, stride, tuple(input_hw), cfg)
    if problem:
        raise OpNameError(f"op {name!r} {problem}")


@lru_cache(maxsize=4096)
def _output_problem(
    family: OpFamily, name: str, c_in: int, c_out: int, stride: int, input_hw: tuple[int, int], cfg: BlockConfig
) -> str | None:
    """Why the op cannot sit at a layer of this shape (built and run as `check_output_shape` says), or None."""
    h, w = input_hw
    given, expected = f"{c_in}x{h}x{w}", f"{c_out}x{-(-h // stride)}x{-(-w // stride)}"
    try:
        block, out = _run_once(family, name, c_in, c_out, stride, (c_in, h, w), cfg, "meta")
    except Exception:  # an op meta tensors cannot run (data-dependent code): run it for real, once
        try:
            block, out = _run_once(family, name, c_in, c_out, stride, (c_in, h, w), cfg, "cpu")
        except Exception as exc:  # the user's code can raise anything
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"fails on a {given} input ({type(exc).__name__}: {detail})"
    if not isinstance(block, nn.Module):
        return f"built a {type(block).__name__}; expected an nn.Module"
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        kind = f"a {out.dim()}-d tensor" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        return f"returns {kind} for a {given} input; expected a tensor [N, C, H, W]"
    got = "x".join(map(str, out.shape[1:]))
    if got != expected:
        return f"maps a {given} input to {got}; expected {expected} (its layer: {c_in} -> {c_out}, stride {stride})"
    return None


def _run_once(
    family: OpFamily,
    name: str,
    c_in: int,
    c_out: int,
    stride: int,
    shape: tuple[int, int, int],
    cfg: BlockConfig,
    device: str,
) -> tuple[Any, Any]:
    """The op built on `device`, and its output for one zero image of `shape` (None when what was built is not
    an nn.Module); torch's random state is left as it was."""
    with torch.random.fork_rng(devices=[]), torch.device(device), torch.no_grad():
        block = family.build(parse_op(name).params, c_in, c_out, stride, cfg)
        if not isinstance(block, nn.Module):
            return block, None
        return block, block.eval()(torch.zeros(1, *shape))


def build_block(name: str, c_in: int, c_out: int, stride: int, cfg: BlockConfig = BlockConfig()) -> nn.Module:
    """Build the block `name` mapping c_in -> c_out channels at `stride`."""
    check_op(name, c_in, c_out, stride)
    op = parse_op(name)
    block = op.family.build(op.params, c_in, c_out, stride, cfg)
    if not isinstance(block, nn.Module):
        built = type(block).__name__
        raise OpNameError(f"op {name!r} built a {built} (family {op.family.name!r}); expected an nn.Module")
    return block
