"""An on-disk cache of derived results, keyed by what they depend on (inputs and this code)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .io import atomic_write_text, json_text

PACKAGE_DIR = Path(__file__).parent


def cache_dir() -> Path:
    """`$HWNAS_CACHE_DIR`, else `$XDG_CACHE_HOME/hwnas`, else `~/.cache/hwnas`."""
    if os.environ.get("HWNAS_CACHE_DIR"):
        return Path(os.environ["HWNAS_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hwnas"


@cache
def code_fingerprint() -> str:
    """Hash of hwnas's own source and data files and the torch version: results change when they do."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.suffix in (".py", ".yaml", ".json") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
            digest.update(path.read_bytes())
    with contextlib.suppress(PackageNotFoundError):
        digest.update(version("torch").encode())
    return digest.hexdigest()[:16]


def cached_json(kind: str, key: Any, compute: Callable[[], Any]) -> Any:
    """Return the cached result for `key` (any JSON-able value) or compute, store and return it."""
    blob = json.dumps({"key": key, "code": code_fingerprint()}, sort_keys=True)
    path = cache_dir() / kind / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"
    try:
        return json.loads(path.read_text())["value"]
    except (OSError, ValueError, KeyError):
        pass
    value = compute()
    with contextlib.suppress(OSError):  # a read-only cache dir only costs speed
        atomic_write_text(path, json_text({"key": key, "value": value}))
    return value
