"""Atomic file writes (a temporary file beside the target, then a rename), strict JSON, file hashes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import HwnasError


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(fileobj)` on a temporary file and rename it to `path` once complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def open_plain(path: str | os.PathLike[str], flags: int, what: str = "file") -> int:
    """`os.open` of a plain file that is never a symbolic link (O_NOFOLLOW) nor a FIFO or device: a run writes
    and reads its own files only, whatever a link in its directory points at. Returns the descriptor."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError:
        if Path(path).is_symlink():
            raise HwnasError(f"{what} {path}: is a symbolic link; expected a plain file (remove the link)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HwnasError(f"{what} {path}: is not a plain file; expected one (remove it)")
    os.set_blocking(fd, True)
    return fd


def append_text(path: str | os.PathLike[str], text: str, what: str = "file") -> None:
    """Append `text` to the plain file `path` (created if missing; a symbolic link there is refused)."""
    with os.fdopen(open_plain(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, what), "a") as f:
        f.write(text)


def read_plain_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """The bytes of the plain file `path` (a symbolic link there is refused)."""
    with os.fdopen(open_plain(path, os.O_RDONLY, what), "rb") as f:
        return f.read()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def finite_or_none(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±inf) in it replaced by None, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259) of `value`: a NaN or infinity becomes null instead of a bare `NaN`."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
