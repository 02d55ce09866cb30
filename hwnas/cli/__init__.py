"""The `hwnas` command line (`hwnas.cli.main`)."""

from .main import build_parser, main
from .run_commands import search_strategy

__all__ = ["build_parser", "main", "search_strategy"]
