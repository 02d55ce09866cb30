"""User-facing errors: each carries one line that names what is wrong and what was expected."""

from __future__ import annotations


class HwnasError(ValueError):
    """Bad input from a user (a file, a name, a flag). The CLI prints it as one line and exits 2."""


class OpNameError(HwnasError):
    """An op name that the block registry cannot parse or build."""


class SpaceError(HwnasError):
    """A search-space file or knob that is invalid."""


class ArchError(HwnasError):
    """An architecture file that is invalid."""
