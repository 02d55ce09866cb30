"""The one entry of every search and supernet training: the space's kind picks the options class, the
config picks the registered strategy, and a `hwnas.pipeline.Run` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import DataPools
from ..errors import HwnasError
from ..pipeline import Outcome, Run
from ..readers import load_yaml
from ..spaces.spec import declared_kind
from . import darts_search, dnas_search, evolution, supernet_training  # noqa: F401  (they register strategies)
from .config import DartsConfig, SearchConfig, SupernetConfig
from .registry import Strategy, strategy


def space_of_run(resume: str) -> str | None:
    """The `space` option a run directory (or one of its checkpoints) was started with; None if unreadable."""
    run = Path(resume)
    config = (run if run.is_dir() else run.parent.parent) / "config.yaml"
    try:
        space = (load_yaml(config, "config") or {}).get("space")
    except (HwnasError, AttributeError, OSError):
        return None
    return space if isinstance(space, str) else None


def config_class(space: str | None = None, resume: str | None = None) -> type[SearchConfig] | type[DartsConfig]:
    """`DartsConfig` when the space (or the resumed run's space) is a cell space, else `SearchConfig`."""
    name = space_of_run(resume) if resume is not None else space
    if name is None:
        return SearchConfig
    try:
        return DartsConfig if declared_kind(name) == "cell" else SearchConfig
    except (HwnasError, OSError):
        return SearchConfig


def strategy_for(cfg: SupernetConfig) -> Strategy:
    """The registered strategy a config selects: DARTS for a cell space's options, else `--strategy`
    (searches) or `--sampling` (supernet training)."""
    if isinstance(cfg, DartsConfig):
        return strategy("darts")
    if isinstance(cfg, SearchConfig):
        return strategy(cfg.strategy)
    return strategy(cfg.sampling)


def run_strategy(
    kind: str,
    cfg: SupernetConfig,
    resume: str | None,
    explicit: set[str] | None,
    pools: DataPools | None,
    latency_model: Any,
) -> Outcome:
    run = Run(kind, cfg, resume=resume, explicit=explicit, pools=pools, latency_model=latency_model)
    chosen = strategy_for(run.cfg)  # a resumed run's own strategy
    run.holds_run = chosen.holds_run
    with run:
        return chosen.run(run)


def search(
    cfg: SearchConfig | DartsConfig,
    resume: str | None = None,
    explicit: set[str] | None = None,
    pools: DataPools | None = None,
    latency_model: Any = None,
) -> Outcome:
    """Run the search `cfg` describes (DARTS for a cell space's options), or continue the run `resume`.

    `explicit`: the options the caller set (a resumed run takes only those it may change). `pools`: the
    caller's data instead of `cfg.data`; `latency_model`: prices layers instead of a table (hwnas.cost.models)."""
    kind = "darts" if isinstance(cfg, DartsConfig) else "search"
    return run_strategy(kind, cfg, resume, explicit, pools, latency_model)


def train_supernet(
    cfg: SupernetConfig,
    resume: str | None = None,
    explicit: set[str] | None = None,
    pools: DataPools | None = None,
    latency_model: Any = None,
) -> Outcome:
    """Train a single-path one-shot supernet (uniform: SPOS, fair: FairNAS), or continue the run `resume`."""
    if isinstance(cfg, SearchConfig):
        raise HwnasError("train_supernet takes a SupernetConfig (a SearchConfig selects a search)")
    return run_strategy("supernet", cfg, resume, explicit, pools, latency_model)
