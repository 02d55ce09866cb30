"""Published architectures as architecture files (data only); `meta.paper` holds the paper's figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..arch import Architecture

ZOO_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*.json"))


def path(name: str) -> Path:
    return ZOO_DIR / f"{name}.json"


def load(name: str) -> Architecture:
    """The zoo model `name` (hwnas.arch is imported here, so `hwnas zoo` can start without torch)."""
    from ..arch import Architecture

    return Architecture.load(path(name))
