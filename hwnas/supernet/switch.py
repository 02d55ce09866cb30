"""`Switch`: a process-wide on/off setting of the supernets, changed for a block with `with switch(True):`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Switch:
    """On or off (`enabled`); calling it with a value gives a context manager that sets it for the block and puts
    the previous value back after."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    @contextmanager
    def __call__(self, enabled: bool) -> Iterator[None]:
        previous, self.enabled = self.enabled, enabled
        try:
            yield
        finally:
            self.enabled = previous
