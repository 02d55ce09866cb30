"""The `hwnas` command. Heavy imports (torch) happen inside the commands that need them."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from .choices import SAMPLINGS
from .engine.config import MAX_BATCH, MAX_THREADS, add_config_flags, input_size_of, integer_in, number_in
from .errors import HwnasError
from .foreign_flags import foreign_flag
from .limits import MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem
from .log import to_stderr, warnings_as_log_lines

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        logger.error(f"{self.prog}: error: {message} (see `{self.prog} --help`)")
        self.exit(2)


CELL_TRAINING = ("init_channels", "layers", "auxiliary", "auxiliary_weight", "drop_path_prob")  # cell networks only
NOT_EVALUATION = ("epochs", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "log_every")


def _input_size(text: str) -> list[int]:
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


def _rule_flag(rule: dict[str, Any], convert: Callable[[str], Any]) -> Callable[[str], Any]:
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
    return _rule_flag(integer_in(low, high), int)


def number_flag(interval: str) -> Callable[[str], float]:
    """An argparse type for a number in an interval such as "[0, 3600]", in `number_in`'s words."""
    return _rule_flag(number_in(interval), float)


def _check_arch_file(arch: str | None) -> None:
    """Read an architecture file argument strictly (UTF-8, JSON, bounded depth) so a bad one is one line."""
    from pathlib import Path

    from . import zoo
    from .readers import load_json

    if arch is not None and arch not in zoo.names() and Path(arch).is_file():
        load_json(arch, "architecture file")


def _load(arch: str, input_size: list[int] | None):
    from .arch import resolve_arch

    _check_arch_file(arch)
    loaded = resolve_arch(arch)
    return loaded.with_space_args(input_size=input_size) if input_size else loaded


def cmd_zoo(args: argparse.Namespace) -> int:
    from .report.zoo_table import zoo_rows, zoo_table

    rows = zoo_rows()
    print(json.dumps(rows, indent=2) if args.json else zoo_table(rows, markdown=args.markdown))
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from .report.tables import cell_space_table, space_table
    from .spaces import builtin_spaces, load_space

    if args.space is None:
        for name in builtin_spaces():
            spec = load_space(name)
            size = "x".join(map(str, spec.input_size))
            if spec.kind == "cell":
                print(
                    f"{name:14} {len(spec.cells):3} cells of {spec.nodes} nodes, {len(spec.ops)} ops per edge "
                    f"(cell space), input {size}"
                )
                continue
            choices = max(len(layer.candidates) for layer in spec.layers)
            print(f"{name:14} {spec.num_layers:3} layers, up to {choices} choices each, input {size}")
        return 0
    from .strategies.config import space_search_defaults

    spec = load_space(args.space)
    space_search_defaults(spec)  # a space's search defaults are options of `hwnas search`: checked as such
    print(spec.declaration.get("source", spec.origin))
    print(cell_space_table(spec) if spec.kind == "cell" else space_table(spec))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .cost import profile_arch
    from .report.tables import profile_table

    arch = _load(args.arch, args.input)
    print(profile_table(arch, profile_arch(arch)))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .cost import measure_latency, profile_arch
    from .model import build_model

    arch = _load(args.arch, args.input)
    model = build_model(arch)
    prof = profile_arch(arch, model)
    result: dict[str, Any] = {
        "arch": args.arch,
        "space": arch.spec.name,
        "input": list(arch.spec.input_size),
        "params": prof.params,
        "macs": prof.macs,
    }
    if args.latency:
        result["latency"] = measure_latency(
            model, arch.spec.input_size, device=args.device, batch=args.batch, threads=args.threads
        ).to_dict()
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.arch}: {prof.params:,} params, {prof.macs / 1e6:,.2f}M MACs at {'x'.join(map(str, result['input']))}")
    if args.latency:
        lat = result["latency"]
        print(
            f"latency on {lat['device']}: {lat['median_ms']:.3f} ms median (IQR {lat['iqr_ms']:.3f} ms, "
            f"{lat['runs']} runs, batch {lat['batch']}, {lat['threads']} threads)"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    arch = _load(args.arch, args.input)
    report = export(
        arch,
        args.output,
        fmt=args.format,
        weights=args.weights,
        verify=not args.no_verify,
        preprocess=args.preprocess,
    )
    print(json.dumps(report) if args.json else report["summary"])
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict

    _check_arch_file(args.arch)
    predictions = predict(args.arch, args.weights, args.images, top_k=args.top_k)
    if args.json:
        print(json.dumps({"arch": args.arch, "weights": args.weights, "predictions": predictions}))
        return 0
    for item in predictions:
        ranked = ", ".join(f"{top['label']} {100 * top['probability']:.1f}%" for top in item["top"])
        print(f"{item['image']}: {ranked}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.config import explicit_keys, resolve_config
    from .training import train

    _check_arch_file(args.arch)
    outcome = train(args.arch, resolve_config(args), resume=args.resume, explicit=explicit_keys(args))
    if outcome.main_process:
        print(json.dumps({"run_dir": str(outcome.run_dir), "final": outcome.final, "best": outcome.best}))
    return 0


LATENCY_ACTIONS = ("validate", "bundle", "import")  # the words before `hwnas latency`'s argument


def latency_bundle(space: Any, args: argparse.Namespace) -> int:
    """`hwnas latency bundle SPACE -o DIR`: the space's table entries as ONNX models and a runner for the device."""
    from .cost.bundle import write_bundle

    if args.dtype != "float32":
        raise HwnasError(f"latency bundle: --dtype {args.dtype}; expected float32 (the bundle's models are float32)")
    manifest = write_bundle(space, args.output, batch=args.batch, progress=not args.json)
    if args.json:
        print(json.dumps({"bundle": args.output, "entries": len(manifest["entries"]), **manifest["key"]}))
        return 0
    print(
        f"wrote {len(manifest['entries'])} ONNX models of {space.name} (batch {args.batch}) to {args.output}; on the "
        f"device (Python 3 and onnxruntime): python3 {args.output}/run_bundle.py, then bring the folder back and run "
        f"hwnas latency import {args.output}/results.json -o TABLE.json"
    )
    return 0


def latency_import(results: str, output: str, as_json: bool) -> int:
    """`hwnas latency import RESULTS.json -o TABLE.json`: a bundle's timings on the device as a cost table."""
    from .cost.bundle import import_results

    table = import_results(results)
    table.save(output)
    if as_json:
        print(json.dumps({"table": output, "entries": len(table.entries), "meta": table.meta}))
        return 0
    print(f"wrote {output}: {len(table.entries)} entries of {table.meta['space']} timed on {table.meta['device_name']}")
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from .cost.build import load_or_build
    from .report.tables import cell_latency_table, latency_table
    from .spaces import load_space

    words = args.target
    action = words[0] if words[0] in LATENCY_ACTIONS else None
    if len(words) != (1 if action is None else 2):
        raise HwnasError(
            f"latency: got {' '.join(words)!r}, expected SPACE or validate SPACE (or bundle SPACE, import RESULTS.json)"
        )
    if action in ("bundle", "import") and not args.output:
        what = "DIR (the bundle's folder)" if action == "bundle" else "TABLE.json (the cost table to write)"
        raise HwnasError(f"latency {action}: no -o given; expected -o {what}")
    if action == "import":
        return latency_import(words[1], args.output, args.json)
    knobs = {"input_size": args.input} if args.input else {}
    cell_knobs = {"init_channels": args.init_channels, "layers": args.layers}
    knobs.update({k: v for k, v in cell_knobs.items() if v is not None})
    space = load_space(words[-1], **knobs)
    if action == "bundle":
        return latency_bundle(space, args)
    table = load_or_build(
        space,
        device=args.device,
        threads=args.threads,
        batch=args.batch,
        dtype=args.dtype,
        calibration=args.calibration,
        table=args.table,
        progress=not args.json,
    )
    if args.output:
        table.save(args.output)
    if action is None:
        if space.kind == "cell":
            print(
                json.dumps({"meta": table.meta, "entries": table.entries})
                if args.json
                else cell_latency_table(space, table)
            )
        else:
            print(json.dumps(table.to_dict_for(space)) if args.json else latency_table(space, table))
        return 0
    from .cost.validate import VALIDATION_ROUNDS, validate_table

    policy = dataclasses.replace(VALIDATION_ROUNDS, min_seconds=args.seconds)
    report = validate_table(space, table, samples=args.samples, seed=args.seed, policy=policy, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    where = f"{table.meta.get('device')} ({table.meta.get('device_name')}), {table.meta.get('threads')} thread(s)"
    print(
        f"{report.samples} random {space.name} architectures at {'x'.join(map(str, space.input_size))}, "
        f"batch {table.meta.get('batch')}, on {where}, timed in {report.seconds:.0f} s:"
    )
    print(
        f"  table (entries + offset {report.offset_ms:+.3f} ms fitted on {report.calibration_networks} other "
        f"networks): mean error {report.mean_error_pct:.1f}%, max {report.max_error_pct:.1f}%; "
        f"Spearman {report.spearman:.3f}, Kendall {report.kendall:.3f}"
    )
    print(
        f"  entries alone: mean error {report.mean_error_pct_without_offset:.1f}%, "
        f"max {report.max_error_pct_without_offset:.1f}%"
    )
    print(
        f"  the measurement against itself (halves of each network's timed blocks): Spearman "
        f"{report.repeatability_spearman:.3f}, mean difference {report.repeatability_pct:.1f}%"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .engine.config import explicit_keys, resolve_config
    from .spaces import load_space
    from .strategies.config import space_search_defaults
    from .strategies.run import search

    if args.resume is None and "space" not in vars(args):
        raise HwnasError("search: give a space (built-in name or YAML path), or --resume RUN_DIR")
    cls = args.search_config
    defaults = {} if args.resume else space_search_defaults(load_space(args.space), cls)
    cfg = resolve_config(args, defaults, cls=cls)
    outcome = search(cfg, resume=args.resume, explicit=explicit_keys(args, cls))
    if outcome.main_process:
        print(json.dumps({"run_dir": str(outcome.run_dir), "arch": str(outcome.arch_path), **outcome.summary}))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart

    run_quickstart(args.out, search_epochs=args.search_epochs, train_epochs=args.train_epochs)
    return 0


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from .engine.config import explicit_keys, resolve_config
    from .strategies.config import SupernetConfig
    from .strategies.run import train_supernet

    if args.resume is None and "space" not in vars(args):
        raise HwnasError("supernet train: give a space (built-in name or YAML path), or --resume RUN_DIR")
    outcome = train_supernet(
        resolve_config(args, cls=SupernetConfig), resume=args.resume, explicit=explicit_keys(args, SupernetConfig)
    )
    if outcome.main_process:
        print(json.dumps({"run_dir": str(outcome.run_dir), "best": outcome.summary["best"]}))
    return 0


def _trained_config(args: argparse.Namespace):
    """The options of the run whose weights `--weights` names (its config.yaml, if any), under the flags given."""
    from pathlib import Path

    from .engine.config import resolve_config
    from .engine.rundir import RunDir

    trained = RunDir(Path(args.weights).parent)
    base = trained.read_config() if trained.config_path.is_file() else {}
    base.pop("run_dir", None)
    return resolve_config(args, base)


def cmd_eval(args: argparse.Namespace) -> int:
    from .training import evaluate

    _check_arch_file(args.arch)
    cfg = _trained_config(args)
    metrics = evaluate(args.arch, args.weights, cfg)
    print(json.dumps({"run_dir": cfg.run_dir, **metrics}))
    return 0


def search_options_class(argv: Sequence[str]) -> type | None:
    """The options class of a `hwnas search` command line, which its space (or --resume run) decides before its
    flags can be parsed: `hwnas.strategies.run.config_class`. None for other commands."""
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "search":
        return None
    words = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    words.add_argument("space", nargs="?")
    words.add_argument("--resume")
    try:
        known, _ = words.parse_known_args(argv[command + 1 :])
    except argparse.ArgumentError:  # e.g. --resume without a value: the full parser says so
        return None
    from .strategies.run import config_class

    return config_class(space=known.space, resume=known.resume)


def cmd_verify(args: argparse.Namespace) -> int:
    from .training import verify

    _check_arch_file(args.arch)
    report = verify(args.arch, args.weights, args.pairs, args.images, _trained_config(args))
    logger.info(
        f"{report['pairs']} pairs ({report['folds']} folds): accuracy {report['accuracy']:.2f}% "
        f"± {report['accuracy_std']:.2f} at threshold {report['threshold']:.3f}; "
        f"TAR@FAR=1e-3 {100 * report['tar_at_far_1e-3']:.2f}%"
    )
    print(json.dumps(report))
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data.faces import write_identities, write_pairs

    root = Path(args.out)
    write_identities(root / "train", args.identities, args.per_identity, args.size, args.seed)
    write_identities(root / "test", args.test_identities, args.per_identity, args.size, args.seed + 1)
    pairs = write_pairs(root / "test", root / "pairs.txt", args.folds, args.per_fold, args.seed)
    logger.info(
        f"wrote {args.identities} training identities to {root / 'train'}, {args.test_identities} held-out ones to "
        f"{root / 'test'} ({args.per_identity} images each, {args.size}x{args.size}) and {pairs}"
    )
    return 0


def build_parser(search_cls: type | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwnas", description="Hardware-aware neural architecture search for PyTorch.", allow_abbrev=False
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    arch_help = "architecture file or zoo name (see `hwnas zoo`)"
    weights_help = "model.pt of a run (its config.yaml supplies the defaults) or any state dict"
    resume_help = "continue RUN_DIR from its latest good checkpoint, or from RUN_DIR/checkpoints/F.pt"
    input_help = "input size CxHxW, overriding the space's (e.g. 3x224x224)"

    def add(name: str, func: Callable[[argparse.Namespace], int] | None, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, allow_abbrev=False)
        p.set_defaults(func=func)
        return p

    p = add("zoo", cmd_zoo, "list the zoo: params and MACs counted here beside the papers' figures")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON rows")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")

    p = add("spaces", cmd_spaces, "list the built-in search spaces, or show one space's layers and candidates")
    p.add_argument("space", nargs="?", help="built-in space name or space YAML path")

    p = add("show", cmd_show, "per-layer table of an architecture: op, shapes, params, MACs")
    p.add_argument("arch", help=arch_help)
    p.add_argument("--input", type=_input_size, help=input_help)

    p = add("profile", cmd_profile, "params and MACs of an architecture (batch 1), optionally measured latency")
    p.add_argument("arch", help=arch_help)
    p.add_argument("--input", type=_input_size, help=input_help)
    p.add_argument("--device", default="cpu", help="device for --latency (cpu, cuda, cuda:1, ...)")
    p.add_argument("--latency", action="store_true", help="measure latency with torch.utils.benchmark")
    p.add_argument("--batch", type=integer_flag(1, MAX_BATCH), default=1, help="batch size for --latency")
    p.add_argument(
        "--threads",
        type=integer_flag(1, MAX_THREADS),
        default=1,
        help="CPU threads for --latency (pinned while measuring)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add(
        "export",
        cmd_export,
        "export an architecture to ONNX, a torch.export program or (legacy) TorchScript, checked against PyTorch",
    )
    p.add_argument("arch", help=arch_help)
    p.add_argument(
        "--format",
        choices=("onnx", "export", "torchscript"),
        required=True,
        help="onnx; export: a torch.export program (.pt2, load with torch.export.load); "
        "torchscript: legacy, prefer --format export",
    )
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--weights", help="state dict (or checkpoint with a 'model' entry) to load first")
    p.add_argument("--input", type=_input_size, help=input_help)
    p.add_argument("--no-verify", action="store_true", help="skip comparing the exported outputs with PyTorch's")
    p.add_argument(
        "--preprocess",
        nargs="?",
        const="float",
        choices=("float", "uint8"),
        help="normalise inside the graph by the architecture's pretrained_cfg: it then takes images at its input "
        "size, float in [0, 1] (--preprocess, --preprocess float) or uint8 0..255 (--preprocess uint8)",
    )
    p.add_argument("--json", action="store_true", help="print the export report as JSON")

    p = add(
        "predict",
        cmd_predict,
        "classify image files with trained weights, preprocessed as the architecture's pretrained_cfg records",
    )
    p.usage = "%(prog)s ARCH --weights FILE IMAGE [IMAGE ...] [--top-k K] [--json]"
    p.add_argument("arch", help="architecture file written by hwnas train or search (RUN_DIR/arch.json)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    p.add_argument("--weights", required=True, metavar="FILE", help="the trained weights (RUN_DIR/model.pt)")
    p.add_argument(
        "--top-k", type=integer_flag(1, 1000), default=5, help="classes shown per image, most probable first"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add("train", cmd_train, "train an architecture from scratch (or resume a run) and write a run directory")
    p.usage = "%(prog)s [ARCH] [--resume RUN_DIR] [--config FILE] [options]"
    p.add_argument("arch", nargs="?", help=arch_help + "; optional with --resume")
    p.add_argument("--resume", metavar="RUN_DIR", help=resume_help)
    add_config_flags(p)

    p = add(
        "quickstart",
        cmd_quickstart,
        "search a small FBNet-like space on the bundled digits with a CPU latency table, retrain the result, "
        "profile and export it (a few minutes on 2 CPU cores)",
    )
    p.add_argument("--out", default="runs/quickstart", help="folder for everything it writes")
    p.add_argument("--search-epochs", type=integer_flag(1, 10_000), default=8)
    p.add_argument("--train-epochs", type=integer_flag(1, 10_000), default=15)

    p = add(
        "latency",
        cmd_latency,
        "build (or show the cached) latency/cost table of a space; `latency validate "
        "SPACE` measures random architectures end to end against it; `latency bundle SPACE -o DIR` writes its "
        "entries as ONNX models with a runner for a device without hwnas; `latency import DIR/results.json -o "
        "TABLE.json` makes the runner's timings a table",
    )
    p.add_argument(
        "target",
        nargs="+",
        metavar="[validate|bundle] SPACE | import RESULTS.json",
        help="built-in space name or space YAML path; import: the results.json of a bundle timed on a device",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or onnxruntime")
    p.add_argument("--threads", type=integer_flag(1, MAX_THREADS), default=1, help="threads pinned while measuring")
    p.add_argument("--batch", type=integer_flag(1, MAX_BATCH), default=1, help="batch size of the measurements")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument(
        "--calibration",
        type=integer_flag(0, 1000),
        default=6,
        help="random whole networks timed with the entries to fit the table's offset (0: none)",
    )
    p.add_argument("--input", type=_input_size, help=input_help)
    p.add_argument(
        "--init-channels", type=integer_flag(2, 4096), help="cell spaces: initial channels of the network to price"
    )
    p.add_argument("--layers", type=integer_flag(3, 1000), help="cell spaces: cells of the network to price")
    p.add_argument("--table", help="use this table file instead of the cache (it must cover the space)")
    p.add_argument(
        "-o", "--output", help="also write the table to this file; bundle: the folder to write; import: the table"
    )
    p.add_argument(
        "--samples", type=integer_flag(2, 100_000), default=50, help="validate: random architectures to measure"
    )
    p.add_argument(
        "--seed", type=integer_flag(0, 2**32 - 1), default=0, help="validate: seed of the random architectures"
    )
    p.add_argument(
        "--seconds",
        type=number_flag("[0, 3600]"),
        default=30.0,
        help="validate: spread the timing of the networks over at least this many seconds",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    from .strategies.config import SearchConfig, SupernetConfig

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

    search_cls = search_cls or SearchConfig
    p = add(
        "search",
        cmd_search,
        "search a space: FBNet DNAS or one-shot search on layer-wise spaces; DARTS on cell spaces "
        "(darts, cnas: `hwnas search darts --help` lists those options)",
    )
    p.set_defaults(search_config=search_cls)
    p.usage = "%(prog)s [SPACE] [--resume RUN_DIR] [--config FILE] [options]"
    p.add_argument("space", nargs="?", default=argparse.SUPPRESS, help="built-in space name or space YAML path")
    p.add_argument("--resume", metavar="RUN_DIR", help=resume_help)
    evaluation_only = ("auxiliary", "auxiliary_weight", "drop_path_prob")
    skip = ("space", *evaluation_only) if search_cls is not SearchConfig else ("space", *CELL_TRAINING)
    add_config_flags(p, skip=skip, cls=search_cls)

    p = add(
        "verify",
        cmd_verify,
        "face verification of trained weights on an LFW-style pairs file: accuracy at the best threshold "
        "(10-fold) and TAR@FAR=1e-3",
    )
    p.usage = "%(prog)s ARCH --weights FILE --pairs FILE [--images DIR] [--config FILE] [options]"
    p.add_argument("arch", help=arch_help)
    p.add_argument("--weights", required=True, metavar="FILE", help=weights_help)
    p.add_argument("--pairs", required=True, metavar="FILE", help="pairs file in LFW's pairs.txt format")
    p.add_argument(
        "--images",
        metavar="DIR",
        help="folder of identity sub-folders the pairs name (default: the pairs file's folder)",
    )
    add_config_flags(p, skip=NOT_EVALUATION)

    p = add(
        "faces",
        cmd_faces,
        "write a small synthetic face-like identity set (training identities, held-out ones and an LFW pairs file)",
    )
    p.add_argument("out", help="folder to write (train/, test/, pairs.txt)")
    p.add_argument("--identities", type=integer_flag(1, 100_000), default=40, help="training identities")
    p.add_argument(
        "--test-identities", type=integer_flag(2, 100_000), default=20, help="held-out identities for the pairs"
    )
    p.add_argument("--per-identity", type=integer_flag(2, 10_000), default=10, help="images per identity")
    p.add_argument("--size", type=integer_flag(8, 4096), default=108, help="image side in pixels")
    p.add_argument("--folds", type=integer_flag(1, 1000), default=10, help="folds of the pairs file")
    p.add_argument(
        "--per-fold", type=integer_flag(1, 100_000), default=30, help="matched (and as many mismatched) pairs per fold"
    )
    p.add_argument("--seed", type=integer_flag(0, 2**32 - 2), default=0)

    p = add("eval", cmd_eval, "accuracy of trained weights on a dataset's validation split")
    p.usage = "%(prog)s ARCH --weights FILE [--config FILE] [options]"
    p.add_argument("arch", help=arch_help)
    p.add_argument("--weights", required=True, metavar="FILE", help=weights_help)
    add_config_flags(p, skip=NOT_EVALUATION)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `hwnas` command line; returns the exit code (0, 1 for a failure, 2 for bad input, 130 interrupted)."""
    to_stderr()
    argv = list(sys.argv[1:] if argv is None else argv)
    foreign = foreign_flag(argv)
    if foreign is not None:
        logger.error(f"hwnas: error: {foreign}")
        return 2
    parser = build_parser(search_options_class(argv))
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
