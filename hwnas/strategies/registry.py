"""Search strategies on DESIGN.md's two axes: how the supernet's weights are trained, how an architecture
is picked. Each strategy is the code a `hwnas.pipeline.Run` runs between its set-up and its end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import HwnasError
from ..pipeline import Outcome, Run, has_checkpoints

TRAINS = ("dnas", "darts", "uniform", "fair", "sandwich", "trained supernet")
PICKS = ("differentiable", "random", "evolution", "pareto", "none")


@dataclass(frozen=True)
class Strategy:
    """`name`: the option value that selects it (`--strategy`, `--sampling`, or `darts` for cell spaces);
    `kind`: the run kind it writes (see `hwnas.pipeline.RUN_KINDS`); `holds_run`: what marks a run
    directory as holding one of its runs."""

    name: str
    kind: str
    trains: str
    picks: str
    run: Callable[[Run], Outcome]
    holds_run: Callable[[Path], bool] = has_checkpoints


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(
    name: str, *, kind: str, trains: str, picks: str, holds_run: Callable[[Path], bool] = has_checkpoints
) -> Callable[[Callable[[Run], Outcome]], Callable[[Run], Outcome]]:
    """Register the function that runs strategy `name` inside a `Run` (a decorator)."""
    if trains not in TRAINS or picks not in PICKS:
        raise HwnasError(
            f"strategy {name!r}: trains {trains!r}, picks {picks!r}; expected trains in {', '.join(TRAINS)} "
            f"and picks in {', '.join(PICKS)}"
        )

    def add(run: Callable[[Run], Outcome]) -> Callable[[Run], Outcome]:
        if name in STRATEGIES:
            raise HwnasError(f"strategy {name!r} is registered already")
        STRATEGIES[name] = Strategy(name, kind, trains, picks, run, holds_run)
        return run

    return add


def strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise HwnasError(f"unknown strategy {name!r}; expected one of {', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[name]
