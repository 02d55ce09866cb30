"""The one entry of every search and supernet training: the registry picks the strategy (and with it the options
class and the run's kind), and a `hwnas.pipeline.Run` runs it."""

from __future__ import annotations

from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any

from ..data import DataPools
from ..errors import HwnasError
from ..pipeline import Outcome, Run
from ..readers import load_yaml
from ..spaces.spec import declared_kind
from .config import SearchOptions, space_search_defaults
from .registry import DEFAULT_FOR_SPACE, Strategy, default_strategy, refuse_foreign, registered, strategy


def saved_config(resume: str) -> dict[str, Any]:
    """The config.yaml of the run `--resume` names (a run directory or one of its checkpoints); {} if unreadable."""
    path = Path(resume)
    run_path = path if path.is_dir() or path.parent.name != "checkpoints" else path.parent.parent
    try:
        saved = load_yaml(run_path / "config.yaml", "config")
    except (HwnasError, OSError):
        return {}
    return saved if isinstance(saved, dict) else {}


def space_kind(space: str | None) -> str:
    """layerwise or cell: the kind a space declares (layerwise when it cannot be read: the search says why)."""
    if space is None:
        return "layerwise"
    try:
        return declared_kind(space)
    except (HwnasError, OSError):
        return "layerwise"


def chosen_strategy(
    kind: str = "search", space: str | None = None, resume: str | None = None, name: str | None = None
) -> Strategy:
    """The strategy a command runs: the resumed run's own, else `name` (`--strategy`, `--sampling`, a config
    file's or a keyword), else the default of the space's kind (dnas for layer-wise spaces, darts for cells)."""
    selector = "sampling" if kind == "supernet" else "strategy"
    if resume is not None:
        saved = saved_config(resume).get(selector)
        if isinstance(saved, str):
            name = saved
    if name is None:
        name = "uniform" if kind == "supernet" else DEFAULT_FOR_SPACE[space_kind(space)]
    chosen = strategy(name, kind)
    if kind == "search" and space is not None and resume is None and chosen.space != space_kind(space):
        others = ", ".join(s.name for s in registered("search", space_kind(space)))
        raise HwnasError(
            f"--strategy {chosen.name} searches {chosen.space} spaces; {space} is a {space_kind(space)} space "
            f"(its strategies: {others})"
        )
    return chosen


def search_defaults(space: Any, chosen: Strategy | None = None) -> dict[str, Any]:
    """The `search_defaults` of `space` that `chosen` (by default the default strategy of the space's kind) takes,
    checked as its options; a name that no strategy of the space's kind takes is refused."""
    chosen = chosen or default_strategy(space.kind)
    every = {f.name for f in fields(options_of(registered(chosen.kind, chosen.space)))}
    return space_search_defaults(space, chosen.options, every)


def options_of(strategies: list[Strategy]) -> type:
    """One options dataclass holding every option of `strategies` (the first declaration of each name), with their
    help groups: what a command line or config file may name before its strategy is checked against them."""
    declared: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for s in strategies:
        groups.update({g.title: g for g in s.options.HELP_GROUPS})
        for f in fields(s.options):
            declared.setdefault(f.name, (f.name, f.type, field(default=f.default, metadata=f.metadata)))
    union = make_dataclass("AnyStrategyOptions", list(declared.values()))
    shared = SearchOptions.HELP_GROUPS[1:]  # latency, network, training, data, run: after the strategies' own
    union.HELP_GROUPS = (*(g for g in groups.values() if g not in shared), *shared)
    return union


def run_strategy(
    kind: str,
    cfg: Any,
    resume: str | None = None,
    explicit: set[str] | None = None,
    pools: DataPools | None = None,
    latency_model: Any = None,
) -> Outcome:
    """Run the strategy of command `kind` (search, supernet) that `cfg` names, or continue the run `resume` with its
    own. `explicit`: the options the caller set (a resumed run takes only those it may change); an option the
    strategy does not take is refused. `pools`: the caller's data instead of `cfg.data`; `latency_model`: prices
    layers instead of a table (hwnas.cost.models)."""
    selector = "sampling" if kind == "supernet" else "strategy"
    chosen = chosen_strategy(kind, resume=resume, name=getattr(cfg, selector, None))
    refuse_foreign(chosen, explicit or set())
    if not isinstance(cfg, chosen.options):
        raise HwnasError(f"strategy {chosen.name} takes a {chosen.options.__name__}, got a {type(cfg).__name__}")
    run = Run(chosen.kind, cfg, resume=resume, explicit=explicit, pools=pools, latency_model=latency_model)
    run.holds_run = chosen.holds_run
    with run:
        return chosen.run(run)


def search(cfg: Any, **run_options: Any) -> Outcome:
    """Run the search `cfg` describes (its `strategy`), or continue the run `resume=`; `run_options` as for
    `run_strategy`."""
    return run_strategy("search", cfg, **run_options)


def train_supernet(cfg: Any, **run_options: Any) -> Outcome:
    """Train a single-path one-shot supernet (uniform: SPOS, fair: FairNAS, sandwich), or continue the run
    `resume=`; `run_options` as for `run_strategy`."""
    return run_strategy("supernet", cfg, **run_options)
