"""What every command's parser shares: one-line usage errors, argument types checked in the options' own words,
and the help texts of the arguments several commands take."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any, NoReturn

from ..engine.config import input_size_of, integer_in, number_in
from ..limits import MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem

logger = logging.getLogger("hwnas.cli")

Adder = Callable[[str, Any, str], argparse.ArgumentParser]  # (command, its function, its help) -> its parser
ARCH_HELP = "architecture file or zoo name (see `hwnas zoo`)"
WEIGHTS_HELP = "model.pt of a run (its config.yaml supplies the defaults) or any state dict"
RESUME_HELP = "continue RUN_DIR from its latest good checkpoint, or from RUN_DIR/checkpoints/F.pt"
INPUT_HELP = "input size CxHxW, overriding the space's (e.g. 3x224x224)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        logger.error(f"{self.prog}: error: {message} (see `{self.prog} --help`)")
        self.exit(2)


CELL_TRAINING = ("init_channels", "layers", "auxiliary", "auxiliary_weight", "drop_path_prob")  # cell networks only


NOT_EVALUATION = ("epochs", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "log_every")


def input_size(text: str) -> list[int]:
    """`--input CxHxW`: three positive integers within the input bounds of `spaces.limits`."""
    size = input_size_of(text)
    if size is None:
        raise argparse.ArgumentTypeError(f"got {text!r}, expected CxHxW with positive integers, e.g. 3x224x224")
    problem = input_size_problem(size)
    if problem is not None:
        raise argparse.ArgumentTypeError(
            f"got {text!r}: {problem} (channels up to {MAX_INPUT_CHANNELS}, sides up to {MAX_INPUT_SIDE})"
        )
    return size


def rule_flag(rule: dict[str, Any], convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that converts a value and checks it with an option's rule, in the option's words."""

    def parse(text: str) -> Any:
        try:
            value = convert(text) if len(text) < 40 else None
        except ValueError:
            value = None
        if value is None or not rule["check"](value):
            raise argparse.ArgumentTypeError(f"got {text!r}, expected {rule['expected']}")
        return value

    return parse


def integer_flag(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for an integer in low..high: the range and its words are `integer_in`'s, as for options."""
    return rule_flag(integer_in(low, high), int)


def number_flag(interval: str) -> Callable[[str], float]:
    """An argparse type for a number in an interval such as "[0, 3600]", in `number_in`'s words."""
    return rule_flag(number_in(interval), float)
