"""Messages for the user go through the `hwnas` logger; the command line shows them on stderr, bare.

A library does not install handlers when imported: `hwnas.<module>` loggers propagate to `hwnas`,
and the CLI (or a user who wants the same lines from Python) calls `to_stderr()` once. Outcomes the user
must act on go through `warn_user`: the same log line, and a `HwnasWarning` for Python callers.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import HwnasWarning

ROOT = "hwnas"
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


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


def warn_user(message: str) -> None:
    """An outcome the user must act on: `hwnas: warning: <message>` on the `hwnas` logger, and a `HwnasWarning`
    attributed to the caller's innermost line outside hwnas.

    The log line is left out when no handler would take it (a plain Python caller): logging's last-resort
    handler would print it to stderr beside Python's own display of the warning."""
    if logging.getLogger(ROOT).hasHandlers():
        logging.getLogger(ROOT).warning("hwnas: warning: %s", message)
    frame, level = sys._getframe(), 1  # stacklevel 1: this function
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, HwnasWarning, stacklevel=level)


@contextmanager
def warnings_as_log_lines() -> Iterator[None]:
    """Within the block, `HwnasWarning`s are not displayed by Python (the CLI shows their log lines instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HwnasWarning)
        yield
