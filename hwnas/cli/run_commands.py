"""The commands that run and write a run directory: train, quickstart, supernet train, search, eval, verify."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from ..choices import SAMPLINGS
from ..engine.config import add_config_flags
from ..errors import HwnasError
from ..io import json_text
from .flags import ARCH_HELP, CELL_TRAINING, NOT_EVALUATION, RESUME_HELP, WEIGHTS_HELP, Adder, integer_flag

logger = logging.getLogger("hwnas.cli")


def cmd_train(args: argparse.Namespace) -> int:
    from ..engine.config import explicit_keys, resolve_config
    from ..standalone import train

    outcome = train(args.arch, resolve_config(args), resume=args.resume, explicit=explicit_keys(args))
    if outcome.main_process:
        print(json_text({"run_dir": str(outcome.run_dir), "final": outcome.final, "best": outcome.best}))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..engine.config import explicit_keys, resolve_config
    from ..spaces import load_space
    from ..strategies.registry import refuse_foreign
    from ..strategies.run import search, search_defaults

    if args.resume is None and "space" not in vars(args):
        raise HwnasError("search: give a space (built-in name or YAML path), or --resume RUN_DIR")
    chosen, every = args.search_strategy, args.search_options
    given = explicit_keys(args, every)
    refuse_foreign(chosen, given)  # before its config file is read as the strategy's own (unknown keys)
    defaults = {} if args.resume else search_defaults(load_space(args.space), chosen)
    cfg = resolve_config(args, defaults, cls=chosen.options)
    outcome = search(cfg, resume=args.resume, explicit=given)
    if outcome.main_process:
        print(json_text({"run_dir": str(outcome.run_dir), "arch": str(outcome.arch_path), **outcome.summary}))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from ..quickstart import run_quickstart

    run_quickstart(args.out, search_epochs=args.search_epochs, train_epochs=args.train_epochs)
    return 0


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from ..engine.config import explicit_keys, resolve_config
    from ..strategies.config import SupernetConfig
    from ..strategies.run import train_supernet

    if args.resume is None and "space" not in vars(args):
        raise HwnasError("supernet train: give a space (built-in name or YAML path), or --resume RUN_DIR")
    outcome = train_supernet(
        resolve_config(args, cls=SupernetConfig), resume=args.resume, explicit=explicit_keys(args, SupernetConfig)
    )
    if outcome.main_process:
        print(json_text({"run_dir": str(outcome.run_dir), "best": outcome.summary["best"]}))
    return 0


def _trained_config(args: argparse.Namespace):
    """The options of the run whose weights `--weights` names (its config.yaml, if any), under the flags given."""
    from pathlib import Path

    from ..engine.config import resolve_config
    from ..engine.rundir import RunDir

    trained = RunDir(Path(args.weights).parent)
    base = trained.read_config() if trained.config_path.is_file() else {}
    base.pop("run_dir", None)
    return resolve_config(args, base)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..standalone import evaluate

    cfg = _trained_config(args)
    metrics = evaluate(args.arch, args.weights, cfg)
    print(json_text({"run_dir": cfg.run_dir, **metrics}))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..standalone import verify

    report = verify(args.arch, args.weights, args.pairs, args.images, _trained_config(args))
    logger.info(
        f"{report['pairs']} pairs ({report['folds']} folds): accuracy {report['accuracy']:.2f}% "
        f"± {report['accuracy_std']:.2f} at threshold {report['threshold']:.3f}; "
        f"TAR@FAR=1e-3 {100 * report['tar_at_far_1e-3']:.2f}%"
    )
    print(json_text(report))
    return 0


def search_strategy(argv: Sequence[str]) -> Any:
    """The registered strategy a `hwnas search` command line runs, which its --strategy (or its --config file's
    strategy, its --resume run's, the default of its space's kind) decides before its flags can be parsed:
    `hwnas.strategies.run.chosen_strategy`. None for other commands."""
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "search":
        return None
    words = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    words.add_argument("space", nargs="?")
    words.add_argument("--resume")
    words.add_argument("--strategy")
    words.add_argument("--config")
    try:
        known, _ = words.parse_known_args(argv[command + 1 :])
    except argparse.ArgumentError:  # e.g. --resume without a value: the full parser says so
        known = argparse.Namespace(space=None, resume=None, strategy=None, config=None)
    from ..readers import load_yaml
    from ..strategies.run import chosen_strategy

    name = known.strategy
    if name is None and known.config:
        with contextlib.suppress(HwnasError, OSError):
            from_file = load_yaml(known.config, "config")
            name = from_file.get("strategy") if isinstance(from_file, dict) else None
    return chosen_strategy("search", known.space, known.resume, name if isinstance(name, str) else None)


def add_search_flags(parser: argparse.ArgumentParser, chosen: Any) -> None:
    """The flags of every registered strategy of the chosen one's space kind, grouped as each declares them, and the
    list of those strategies: an option of another strategy parses, and is then refused naming its strategy."""
    from ..strategies.registry import registered
    from ..strategies.run import options_of

    among = registered("search", chosen.space)
    every = options_of(among)
    parser.set_defaults(search_strategy=chosen, search_options=every)
    parser.epilog = "strategies: " + "; ".join(s.describe() for s in among)
    evaluation_only = ("auxiliary", "auxiliary_weight", "drop_path_prob")
    add_config_flags(parser, skip=("space", *(evaluation_only if chosen.space == "cell" else CELL_TRAINING)), cls=every)


def add_train(add: Adder) -> None:
    p = add("train", cmd_train, "train an architecture from scratch (or resume a run) and write a run directory")
    p.usage = "%(prog)s [ARCH] [--resume RUN_DIR] [--config FILE] [options]"
    p.add_argument("arch", nargs="?", help=ARCH_HELP + "; optional with --resume")
    p.add_argument("--resume", metavar="RUN_DIR", help=RESUME_HELP)
    add_config_flags(p)


def add_quickstart(add: Adder) -> None:
    p = add(
        "quickstart",
        cmd_quickstart,
        "search a small FBNet-like space on the bundled digits with a CPU latency table, retrain the result, "
        "profile and export it (a few minutes on 2 CPU cores)",
    )
    p.add_argument("--out", default="runs/quickstart", help="folder for everything it writes")
    p.add_argument("--search-epochs", type=integer_flag(1, 10_000), default=8)
    p.add_argument("--train-epochs", type=integer_flag(1, 10_000), default=15)


def add_supernet(add: Adder) -> None:
    from ..strategies.config import SupernetConfig

    p = add("supernet", None, "single-path one-shot supernets: `hwnas supernet train SPACE --sampling uniform|fair`")
    supernet_sub = p.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    p = supernet_sub.add_parser(
        "train",
        help="train a supernet with uniform (SPOS), strictly fair (FairNAS) or sandwich (BigNAS, OFA) paths",
        allow_abbrev=False,
    )
    p.set_defaults(func=cmd_supernet_train)
    p.usage = "%(prog)s [SPACE] [--resume RUN_DIR] [--config FILE] [options]"
    p.add_argument("space", nargs="?", default=argparse.SUPPRESS, help="built-in space name or space YAML path")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its latest good checkpoint")
    p.add_argument(
        "--strategy",
        dest="sampling",
        choices=SAMPLINGS,
        default=argparse.SUPPRESS,
        help="the same as --sampling",
    )
    add_config_flags(p, skip=("space", *CELL_TRAINING), cls=SupernetConfig)


def add_search(add: Adder, chosen: Any = None) -> None:
    p = add(
        "search",
        cmd_search,
        "search a space with a registered strategy: FBNet DNAS or one-shot search on layer-wise spaces; DARTS on "
        "cell spaces (`hwnas search darts --help` lists those options)",
    )
    p.usage = "%(prog)s [SPACE] [--strategy NAME] [--resume RUN_DIR] [--config FILE] [options]"
    p.add_argument("space", nargs="?", default=argparse.SUPPRESS, help="built-in space name or space YAML path")
    p.add_argument("--resume", metavar="RUN_DIR", help=RESUME_HELP)
    if chosen is not None:
        add_search_flags(p, chosen)


def add_verify(add: Adder) -> None:
    p = add(
        "verify",
        cmd_verify,
        "face verification of trained weights on an LFW-style pairs file: accuracy at the best threshold "
        "(10-fold) and TAR@FAR=1e-3",
    )
    p.usage = "%(prog)s ARCH --weights FILE --pairs FILE [--images DIR] [--config FILE] [options]"
    p.add_argument("arch", help=ARCH_HELP)
    p.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_HELP)
    p.add_argument("--pairs", required=True, metavar="FILE", help="pairs file in LFW's pairs.txt format")
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder of identity sub-folders the pairs name (default: the pairs file's folder)",
    )
    add_config_flags(p, skip=NOT_EVALUATION)


def add_eval(add: Adder) -> None:
    p = add("eval", cmd_eval, "accuracy of trained weights on a dataset's validation split")
    p.usage = "%(prog)s ARCH --weights FILE [--config FILE] [options]"
    p.add_argument("arch", help=ARCH_HELP)
    p.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_HELP)
    add_config_flags(p, skip=NOT_EVALUATION)
