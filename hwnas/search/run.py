"""The one entry of every search: the space's kind picks the options class, the config picks the strategy."""

from __future__ import annotations

from pathlib import Path

from ..errors import HwnasError
from ..spaces.readers import load_yaml
from ..spaces.spec import declared_kind
from .config import DartsConfig, SearchConfig


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


def search(cfg: SearchConfig | DartsConfig, resume: str | None = None, explicit: set[str] | None = None):
    """Run the search `cfg` describes (DARTS for a cell space's options), or continue the run `resume`."""
    if isinstance(cfg, DartsConfig):
        from .darts_session import search_cells

        return search_cells(cfg, resume=resume, explicit=explicit)
    from .session import search as search_layers

    return search_layers(cfg, resume=resume, explicit=explicit)
