"""Writes into a run directory: an OSError (a full disk above all) becomes one line that says what to do."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import HwnasError

FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # no space left, file-size limit (ulimit -f), quota


class StorageError(HwnasError):
    """A file of a run could not be written (a full disk, a file-size limit, no permission)."""


def write_error(exc: OSError, path: str | os.PathLike[str], hint: str = "") -> StorageError:
    """One line for an OSError raised while writing `path`; `hint` says what is kept and how to continue."""
    reason = exc.strerror or str(exc)
    if exc.errno in FULL:
        return StorageError(f"cannot write {path}: the disk is full or a file-size limit was hit ({reason}){hint}")
    return StorageError(f"cannot write {path}: {reason}{hint}")


@contextmanager
def writing(path: str | os.PathLike[str], hint: str = "") -> Iterator[None]:
    """Turn an OSError raised inside the block into a StorageError naming `path`."""
    try:
        yield
    except OSError as exc:
        raise write_error(exc, path, hint) from None
