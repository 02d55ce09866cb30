"""The search strategies: the only way a search or a supernet training is selected and run.

A strategy is a function that runs inside a `hwnas.pipeline.Run`, registered with its options class (a dataclass
of `SearchOptions`, or `SupernetConfig` for a supernet training) by `register_strategy`. The built-in strategies
register the way a user's do: their modules (`BUILTIN_MODULES`) use the decorator, and a user's package either
does the same when imported or names its module in the entry-point group `hwnas.strategies`. The command line,
config files and `hwnas.search(strategy=...)` select strategies by name from here; `--help` lists them with the
options each takes."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass
from importlib.metadata import entry_points
from pathlib import Path

from ..errors import HwnasError
from ..pipeline import Outcome, Run, has_checkpoints

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hwnas.strategies"
BUILTIN_MODULES = (
    "hwnas.strategies.dnas_search",
    "hwnas.strategies.evolution",
    "hwnas.strategies.darts_search",
    "hwnas.strategies.supernet_training",
)
KINDS = {"search": "hwnas search", "supernet": "hwnas supernet train"}
SPACE_KINDS = ("layerwise", "cell")
DEFAULT_FOR_SPACE = {"layerwise": "dnas", "cell": "darts"}


@dataclass(frozen=True)
class Strategy:
    """`name`: what selects it (`--strategy`, or `--sampling` for a supernet training); `options`: its options
    class; `kind`: the command that runs it (search or supernet); `space`: the kind of space it searches
    (layerwise or cell); `trains`, `picks`: what it trains and how it picks, in words for `--help`; `holds_run`:
    what marks a run directory as holding one of its runs."""

    name: str
    options: type
    kind: str
    space: str
    trains: str
    picks: str
    run: Callable[[Run], Outcome]
    holds_run: Callable[[Path], bool] = has_checkpoints

    def describe(self) -> str:
        return f"{self.name} (trains {self.trains}; picks {self.picks})"


STRATEGIES: dict[str, Strategy] = {}
_loaded = False


def register_strategy(
    name: str,
    *,
    options: type,
    trains: str,
    picks: str,
    kind: str = "search",
    space: str = "layerwise",
    holds_run: Callable[[Path], bool] = has_checkpoints,
) -> Callable[[Callable[[Run], Outcome]], Callable[[Run], Outcome]]:
    """Register the function that runs strategy `name` inside a `Run` (a decorator), with its options class: a
    dataclass of `hwnas.strategies.config.SearchOptions` whose `strategy` defaults to `name` (or, for a supernet
    training, of `SupernetConfig`)."""
    if kind not in KINDS or space not in SPACE_KINDS:
        raise HwnasError(
            f"strategy {name!r}: kind {kind!r}, space {space!r}; expected kind in {', '.join(KINDS)} and space in "
            f"{', '.join(SPACE_KINDS)}"
        )
    selector = "sampling" if kind == "supernet" else "strategy"
    declared = {f.name: f for f in fields(options)} if is_dataclass(options) else {}
    if selector not in declared or (kind == "search" and declared[selector].default != name):
        raise HwnasError(
            f"strategy {name!r}: options {getattr(options, '__name__', options)!r} is not an options dataclass "
            f"whose {selector!r} defaults to {name!r} (subclass hwnas.strategies.config.SearchOptions and set "
            f"strategy: str = {name!r})"
        )

    def add(run: Callable[[Run], Outcome]) -> Callable[[Run], Outcome]:
        if name in STRATEGIES:
            raise HwnasError(f"strategy {name!r} is registered already")
        STRATEGIES[name] = Strategy(name, options, kind, space, trains, picks, run, holds_run)
        return run

    return add


def load_strategies() -> None:
    """Import the built-in strategies and those of installed plugins (entry-point group `hwnas.strategies`),
    once; a plugin that fails to load is one line naming it."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # a plugin's import or registration can raise anything
            _loaded = False
            raise HwnasError(
                f"strategy plugin {entry.name!r} ({entry.value}, entry-point group {ENTRY_POINT_GROUP}) failed to "
                f"load: {type(exc).__name__}: {exc}"
            ) from None
        log.debug("loaded strategy plugin %s = %s", entry.name, entry.value)


def registered(kind: str | None = None, space: str | None = None) -> list[Strategy]:
    """The registered strategies of a command (`kind`) and a space kind: the built-in ones in `BUILTIN_MODULES`
    order, then the others in registration order (whichever module was imported first)."""
    load_strategies()
    rank = {module: i for i, module in enumerate(BUILTIN_MODULES)}
    found = [s for s in STRATEGIES.values() if kind in (None, s.kind) and space in (None, s.space)]
    return sorted(found, key=lambda s: rank.get(s.run.__module__, len(rank)))


def strategy(name: str, kind: str = "search") -> Strategy:
    """The registered strategy `name` of the command `kind`; one line listing the others when there is none."""
    load_strategies()
    found = STRATEGIES.get(name)
    if found is not None and found.kind == kind:
        return found
    if found is not None:
        raise HwnasError(f"{found.name} is a strategy of `{KINDS[found.kind]}`, not of `{KINDS[kind]}`")
    names = ", ".join(s.name for s in registered(kind))
    raise HwnasError(f"unknown strategy {name!r}; expected one of {names}")


def default_strategy(space_kind: str) -> Strategy:
    return strategy(DEFAULT_FOR_SPACE[space_kind])


def refuse_foreign(chosen: Strategy, given: Iterable[str], flags: bool = True) -> None:
    """One line for the first option in `given` that `chosen` does not take, naming the strategies that do:
    an option of another strategy is refused, never ignored."""
    own = {f.name for f in fields(chosen.options)}
    for name in given:
        if name in own:
            continue
        owners = [s.name for s in registered(chosen.kind) if name in {f.name for f in fields(s.options)}]
        if not owners:
            raise HwnasError(f"unknown option {name!r}; expected one of {', '.join(sorted(own))}")
        shown = "--" + name.replace("_", "-") if flags else name
        raise HwnasError(
            f"{shown} is an option of {', '.join(owners)}; the strategy {chosen.name} does not take it "
            f"(`{KINDS[chosen.kind]} --help` lists the options of each)"
        )
