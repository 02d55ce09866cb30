"""The `hwnas` command: its parser, assembled from the commands' own builders, and `main`, which runs one command
line and turns every refusal into one line and an exit code. Heavy imports (torch) happen inside the commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..errors import HwnasError
from ..foreign_flags import foreign_flag
from ..log import to_stderr, warnings_as_log_lines
from .flags import Parser
from .inspect_commands import add_export, add_faces, add_predict, add_profile, add_show, add_spaces, add_zoo
from .latency_command import add_latency
from .run_commands import add_eval, add_quickstart, add_search, add_supernet, add_train, add_verify, search_strategy

logger = logging.getLogger("hwnas.cli")


def build_parser(chosen: Any = "dnas") -> argparse.ArgumentParser:
    """The `hwnas` parser; `chosen`: the registered strategy (or its name) of a `hwnas search` command line, whose
    flags `search` then holds; None for other command lines, so that `hwnas --help` starts without torch."""
    if isinstance(chosen, str):
        from ..strategies.registry import strategy

        chosen = strategy(chosen)
    parser = Parser(
        prog="hwnas", description="Hardware-aware neural architecture search for PyTorch.", allow_abbrev=False
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int] | None, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        p.set_defaults(func=func)
        return p

    add_zoo(add)
    add_spaces(add)
    add_show(add)
    add_profile(add)
    add_export(add)
    add_predict(add)
    add_train(add)
    add_quickstart(add)
    add_latency(add)
    add_supernet(add)
    add_search(add, chosen)
    add_verify(add)
    add_faces(add)
    add_eval(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `hwnas` command line; returns the exit code (0, 1 for a failure, 2 for bad input, 130 interrupted)."""
    to_stderr()
    argv = list(sys.argv[1:] if argv is None else argv)
    foreign = foreign_flag(argv)
    if foreign is not None:
        logger.error(f"hwnas: error: {foreign}")
        return 2
    try:
        chosen = search_strategy(argv)
    except HwnasError as exc:
        logger.error(f"hwnas search: error: {exc}")
        return 2
    parser = build_parser(chosen)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already said in one line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        with warnings_as_log_lines():  # each HwnasWarning is shown once, as its log line
            return args.func(args)
    except HwnasError as exc:
        if args.debug:
            raise
        logger.error(f"hwnas {args.command}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        logger.error("hwnas: interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        logger.error(f"hwnas {args.command}: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return 1
