"""Published architectures as architecture files: data only (no torch, no hwnas.arch);
`hwnas.arch.Architecture.from_zoo(name)` validates and loads one. `meta.paper` holds the paper's figures."""

from __future__ import annotations

from pathlib import Path

ZOO_DIR = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in ZOO_DIR.glob("*.json"))


def path(name: str) -> Path:
    return ZOO_DIR / f"{name}.json"
