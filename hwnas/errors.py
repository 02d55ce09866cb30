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


class HwnasWarning(UserWarning):
    """An outcome the user must act on (a search that did not search, a target missed, data resized).

    Issued by `hwnas.log.warn_user`, which also logs the line; `warnings.simplefilter("error", HwnasWarning)`
    turns every such outcome into an exception."""
