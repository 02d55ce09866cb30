"""Messages for the user go through the `hwnas` logger; the command line shows them on stderr, bare.

A library does not install handlers when imported: `hwnas.<module>` loggers propagate to `hwnas`,
and the CLI (or a user who wants the same lines from Python) calls `to_stderr()` once.
"""

from __future__ import annotations

import logging
import sys

ROOT = "hwnas"


class CurrentStderr(logging.StreamHandler):
    """A handler that writes to whatever `sys.stderr` is when a record is emitted (pytest swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        """The stream is always the current sys.stderr; assignments are ignored."""


def to_stderr(level: int = logging.INFO) -> None:
    """Show `hwnas` messages of `level` and above on stderr, one bare line each (idempotent)."""
    logger = logging.getLogger(ROOT)
    if not any(isinstance(h, CurrentStderr) for h in logger.handlers):
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
