"""The `hwnas` command. Heavy imports (torch) happen inside the commands that need them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .errors import HwnasError
from .foreign_flags import foreign_flag
from .spaces.limits import MAX_INPUT_CHANNELS, MAX_INPUT_SIDE, input_size_problem


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


CELL_TRAINING = ("init_channels", "layers", "auxiliary", "auxiliary_weight", "drop_path_prob")  # cell networks only


def _input_size(text: str) -> list[int]:
    """`--input CxHxW`: three positive integers within the input bounds of `spaces.limits`."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and len(p) < 10 and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"got {text!r}, expected CxHxW with positive integers, e.g. 3x224x224")
    size = [int(p) for p in parts]
    problem = input_size_problem(size)
    if problem is not None:
        raise argparse.ArgumentTypeError(
            f"got {text!r}: {problem} (channels up to {MAX_INPUT_CHANNELS}, sides up to {MAX_INPUT_SIDE})"
        )
    return size


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, else one line saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text) if len(text) < 20 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"got {text!r}, expected an integer in {low}..{high}")
        return value

    return parse


def _check_arch_file(arch: str | None) -> None:
    """Read an architecture file argument strictly (UTF-8, JSON, bounded depth) so a bad one is one line."""
    from pathlib import Path

    from . import zoo
    from .spaces.readers import load_json

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
    spec = load_space(args.space)
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
    report = export(arch, args.output, fmt=args.format, weights=args.weights, verify=not args.no_verify)
    print(json.dumps(report) if args.json else report["summary"])
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.config import explicit_keys, resolve_config
    from .train.session import train

    _check_arch_file(args.arch)
    outcome = train(args.arch, resolve_config(args), resume=args.resume, explicit=explicit_keys(args))
    if outcome.main_process:
        print(json.dumps({"run_dir": str(outcome.run_dir), "final": outcome.final, "best": outcome.best}))
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from .cost.table import load_or_build
    from .report.tables import cell_latency_table, latency_table
    from .spaces import load_space

    words = args.target
    validate = words[0] == "validate"
    if validate != (len(words) == 2) or not 1 <= len(words) <= 2:
        raise HwnasError(f"latency: got {' '.join(words)!r}, expected SPACE or validate SPACE")
    knobs = {"input_size": args.input} if args.input else {}
    cell_knobs = {"init_channels": args.init_channels, "layers": args.layers}
    knobs.update({k: v for k, v in cell_knobs.items() if v is not None})
    space = load_space(words[-1], **knobs)
    table = load_or_build(
        space,
        device=args.device,
        threads=args.threads,
        batch=args.batch,
        dtype=args.dtype,
        table=args.table,
        progress=not args.json,
    )
    if args.output:
        table.save(args.output)
    if not validate:
        if space.kind == "cell":
            print(
                json.dumps({"meta": table.meta, "entries": table.entries})
                if args.json
                else cell_latency_table(space, table)
            )
        else:
            print(json.dumps(table.to_dict_for(space)) if args.json else latency_table(space, table))
        return 0
    from .cost.validate import validate_table

    report = validate_table(space, table, samples=args.samples, seed=args.seed, progress=not args.json)
    if args.save_offset and table.path is not None:
        table.offset_ms = report.offset_ms
        table.save(table.path)
    if args.json:
        print(json.dumps(report.to_dict()))
        return 0
    where = f"{table.meta.get('device')} ({table.meta.get('device_name')}), {table.meta.get('threads')} thread(s)"
    print(
        f"{report.samples} random {space.name} architectures at {'x'.join(map(str, space.input_size))}, "
        f"batch {table.meta.get('batch')}, on {where}:"
    )
    print(
        f"  sum of per-layer entries: mean error {report.mean_error_pct:.1f}%, max {report.max_error_pct:.1f}%; "
        f"Spearman {report.spearman:.3f}, Kendall {report.kendall:.3f}"
    )
    print(
        f"  with a per-model offset of {report.offset_ms:+.3f} ms (fitted on half the samples, judged on the "
        f"other half): mean error {report.mean_error_pct_with_offset:.1f}%, "
        f"max {report.max_error_pct_with_offset:.1f}%" + (" (saved in the table)" if args.save_offset else "")
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .search.config import DartsConfig
    from .train.config import explicit_keys, resolve_config

    if args.resume is None and "space" not in vars(args):
        raise HwnasError("search: give a space (built-in name or YAML path), or --resume RUN_DIR")
    from .search.config import space_search_defaults
    from .spaces import load_space

    cls = args.search_config
    defaults = {} if args.resume else space_search_defaults(load_space(args.space), cls)
    cfg = resolve_config(args, defaults, cls=cls)
    if cls is DartsConfig:
        from .search.darts_session import search_cells

        outcome = search_cells(cfg, resume=args.resume, explicit=explicit_keys(args, cls))
    else:
        from .search.session import search

        outcome = search(cfg, resume=args.resume, explicit=explicit_keys(args, cls))
    if outcome.main_process:
        print(json.dumps({"run_dir": str(outcome.run_dir), "arch": str(outcome.arch_path), **outcome.summary}))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from .quickstart import run_quickstart

    run_quickstart(args.out, search_epochs=args.search_epochs, train_epochs=args.train_epochs)
    return 0


def cmd_supernet_train(args: argparse.Namespace) -> int:
    from .search.config import SupernetConfig
    from .search.session import train_supernet
    from .train.config import explicit_keys, resolve_config

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

    from .train.config import resolve_config
    from .train.rundir import RunDir

    trained = RunDir(Path(args.weights).parent)
    base = trained.read_config() if trained.config_path.is_file() else {}
    base.pop("run_dir", None)
    return resolve_config(args, base)


def cmd_eval(args: argparse.Namespace) -> int:
    from .train.session import evaluate

    _check_arch_file(args.arch)
    run_dir, metrics = evaluate(args.arch, args.weights, _trained_config(args))
    print(f"run directory: {run_dir}", file=sys.stderr)
    print(json.dumps({"run_dir": str(run_dir), **metrics}))
    return 0


def _is_cell_space(name: str) -> bool:
    """Whether `name` (a built-in space or YAML path) declares `kind: cell`; False when it cannot be read."""
    from .spaces.spec import declared_kind

    try:
        return declared_kind(name) == "cell"
    except (HwnasError, OSError):
        return False


def search_config_class(argv: Sequence[str]) -> type:
    """`hwnas search` takes DARTS options when its space (or the resumed run's space) is a cell space."""
    from .search.config import DartsConfig, SearchConfig

    if "search" not in argv:
        return SearchConfig
    rest = list(argv[list(argv).index("search") + 1 :])
    space = None
    if "--resume" in rest and rest.index("--resume") + 1 < len(rest):
        from pathlib import Path

        from .spaces.readers import load_yaml

        run = Path(rest[rest.index("--resume") + 1])
        config = (run if run.is_dir() else run.parent.parent) / "config.yaml"
        try:
            space = (load_yaml(config, "config") or {}).get("space")
        except (HwnasError, AttributeError):
            space = None
    else:
        space = next((a for a in rest if not a.startswith("-")), None)
    return DartsConfig if isinstance(space, str) and _is_cell_space(space) else SearchConfig


def cmd_verify(args: argparse.Namespace) -> int:
    from .train.session import verify

    _check_arch_file(args.arch)
    report = verify(args.arch, args.weights, args.pairs, args.images, _trained_config(args))
    print(
        f"{report['pairs']} pairs ({report['folds']} folds): accuracy {report['accuracy']:.2f}% "
        f"± {report['accuracy_std']:.2f} at threshold {report['threshold']:.3f}; "
        f"TAR@FAR=1e-3 {100 * report['tar_at_far_1e-3']:.2f}%",
        file=sys.stderr,
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
    print(
        f"wrote {args.identities} training identities to {root / 'train'}, {args.test_identities} held-out ones to "
        f"{root / 'test'} ({args.per_identity} images each, {args.size}x{args.size}) and {pairs}",
        file=sys.stderr,
    )
    return 0


def build_parser(search_cls: type | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="hwnas", description="Hardware-aware neural architecture search for PyTorch.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    arch_help = "architecture file or zoo name (see `hwnas zoo`)"
    input_help = "input size CxHxW, overriding the space's (e.g. 3x224x224)"

    def add(name: str, func: Callable[[argparse.Namespace], int] | None, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
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
    p.add_argument("--batch", type=int_in(1, 65536), default=1, help="batch size for --latency")
    p.add_argument(
        "--threads", type=int_in(1, 1024), default=1, help="CPU threads for --latency (pinned while measuring)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add("export", cmd_export, "export an architecture to ONNX or TorchScript, checked against PyTorch")
    p.add_argument("arch", help=arch_help)
    p.add_argument("--format", choices=("onnx", "torchscript"), required=True)
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--weights", help="state dict (or checkpoint with a 'model' entry) to load first")
    p.add_argument("--input", type=_input_size, help=input_help)
    p.add_argument("--no-verify", action="store_true", help="skip comparing the exported outputs with PyTorch's")
    p.add_argument("--json", action="store_true", help="print the export report as JSON")

    from .train.config import add_config_flags

    p = add("train", cmd_train, "train an architecture from scratch (or resume a run) and write a run directory")
    p.add_argument("arch", nargs="?", help=arch_help + "; optional with --resume")
    p.add_argument(
        "--resume", help="continue RUN_DIR from its latest good checkpoint, or from RUN_DIR/checkpoints/F.pt"
    )
    add_config_flags(p)

    p = add(
        "quickstart",
        cmd_quickstart,
        "search a small FBNet-like space on the bundled digits with a CPU latency table, retrain the result, "
        "profile and export it (a few minutes on 2 CPU cores)",
    )
    p.add_argument("--out", default="runs/quickstart", help="folder for everything it writes")
    p.add_argument("--search-epochs", type=int_in(1, 10_000), default=8)
    p.add_argument("--train-epochs", type=int_in(1, 10_000), default=15)

    p = add(
        "latency",
        cmd_latency,
        "build (or show the cached) latency/cost table of a space; `latency validate "
        "SPACE` measures random architectures end to end against it",
    )
    p.add_argument("target", nargs="+", metavar="[validate] SPACE", help="built-in space name or space YAML path")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or onnxruntime")
    p.add_argument("--threads", type=int_in(1, 1024), default=1, help="threads pinned while measuring")
    p.add_argument("--batch", type=int_in(1, 65536), default=1, help="batch size of the measurements")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--input", type=_input_size, help=input_help)
    p.add_argument(
        "--init-channels", type=int_in(2, 4096), help="cell spaces: initial channels of the network to price"
    )
    p.add_argument("--layers", type=int_in(3, 1000), help="cell spaces: cells of the network to price")
    p.add_argument("--table", help="use this table file instead of the cache (it must cover the space)")
    p.add_argument("-o", "--output", help="also write the table to this file")
    p.add_argument("--samples", type=int_in(2, 100_000), default=50, help="validate: random architectures to measure")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="validate: seed of the random architectures")
    p.add_argument("--save-offset", action="store_true", help="validate: store the fitted offset in the table")
    p.add_argument("--json", action="store_true", help="print JSON")

    from .search.config import SearchConfig, SupernetConfig

    p = add("supernet", None, "single-path one-shot supernets: `hwnas supernet train SPACE --sampling uniform|fair`")
    supernet_sub = p.add_subparsers(dest="supernet_command", required=True, metavar="SUBCOMMAND")
    p = supernet_sub.add_parser("train", help="train a supernet with uniform (SPOS) or strictly fair (FairNAS) paths")
    p.set_defaults(func=cmd_supernet_train)
    p.add_argument("space", nargs="?", default=argparse.SUPPRESS, help="built-in space name or space YAML path")
    p.add_argument("--resume", help="continue RUN_DIR from its latest good checkpoint")
    p.add_argument(
        "--strategy",
        dest="sampling",
        choices=("uniform", "fair"),
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
    p.add_argument("space", nargs="?", default=argparse.SUPPRESS, help="built-in space name or space YAML path")
    p.add_argument(
        "--resume", help="continue RUN_DIR from its latest good checkpoint, or from RUN_DIR/checkpoints/F.pt"
    )
    evaluation_only = ("auxiliary", "auxiliary_weight", "drop_path_prob")
    skip = ("space", *evaluation_only) if search_cls is not SearchConfig else ("space", *CELL_TRAINING)
    add_config_flags(p, skip=skip, cls=search_cls)

    p = add(
        "verify",
        cmd_verify,
        "face verification of trained weights on an LFW-style pairs file: accuracy at the best threshold "
        "(10-fold) and TAR@FAR=1e-3",
    )
    p.add_argument("arch", help=arch_help)
    p.add_argument(
        "--weights", required=True, help="model.pt of a run (its config.yaml supplies the defaults) or any state dict"
    )
    p.add_argument("--pairs", required=True, help="pairs file in LFW's pairs.txt format")
    p.add_argument("--images", help="folder of identity sub-folders the pairs name (default: the pairs file's folder)")
    add_config_flags(p, skip=("epochs", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "log_every"))

    p = add(
        "faces",
        cmd_faces,
        "write a small synthetic face-like identity set (training identities, held-out ones and an LFW pairs file)",
    )
    p.add_argument("out", help="folder to write (train/, test/, pairs.txt)")
    p.add_argument("--identities", type=int_in(1, 100_000), default=40, help="training identities")
    p.add_argument("--test-identities", type=int_in(2, 100_000), default=20, help="held-out identities for the pairs")
    p.add_argument("--per-identity", type=int_in(2, 10_000), default=10, help="images per identity")
    p.add_argument("--size", type=int_in(8, 4096), default=108, help="image side in pixels")
    p.add_argument("--folds", type=int_in(1, 1000), default=10, help="folds of the pairs file")
    p.add_argument(
        "--per-fold", type=int_in(1, 100_000), default=30, help="matched (and as many mismatched) pairs per fold"
    )
    p.add_argument("--seed", type=int_in(0, 2**32 - 2), default=0)

    p = add("eval", cmd_eval, "accuracy of trained weights on a dataset's validation split")
    p.add_argument("arch", help=arch_help)
    p.add_argument(
        "--weights", required=True, help="model.pt of a run (its config.yaml supplies the defaults) or any state dict"
    )
    add_config_flags(p, skip=("epochs", "checkpoint_every", "keep_checkpoints", "max_bad_steps", "log_every"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    foreign = foreign_flag(argv)
    if foreign is not None:
        print(f"hwnas: error: {foreign}", file=sys.stderr)
        return 2
    parser = build_parser(search_config_class(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except HwnasError as exc:
        if args.debug:
            raise
        print(f"hwnas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"hwnas {args.command}: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr
        )
        return 1
