"""`hwnas latency`: a space's cost table, checked against whole networks, bundled for a device, imported back."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..engine.config import MAX_BATCH, MAX_THREADS
from ..errors import HwnasError
from ..io import json_text
from .flags import INPUT_HELP, Adder, input_size, integer_flag, number_flag

LATENCY_ACTIONS = ("validate", "bundle", "import")  # the words before `hwnas latency`'s argument


def latency_bundle(space: Any, args: argparse.Namespace) -> int:
    """`hwnas latency bundle SPACE -o DIR`: the space's table entries as ONNX models and a runner for the device."""
    from ..cost.bundle import write_bundle

    if args.dtype != "float32":
        raise HwnasError(f"latency bundle: --dtype {args.dtype}; expected float32 (the bundle's models are float32)")
    manifest = write_bundle(space, args.output, batch=args.batch, progress=not args.json)
    if args.json:
        print(json_text({"bundle": args.output, "entries": len(manifest["entries"]), **manifest["key"]}))
        return 0
    print(
        f"wrote {len(manifest['entries'])} ONNX models of {space.name} (batch {args.batch}) to {args.output}; on the "
        f"device (Python 3 and onnxruntime): python3 {args.output}/run_bundle.py, then bring the folder back and run "
        f"hwnas latency import {args.output}/results.json -o TABLE.json"
    )
    return 0


def latency_import(results: str, output: str, as_json: bool) -> int:
    """`hwnas latency import RESULTS.json -o TABLE.json`: a bundle's timings on the device as a cost table."""
    from ..cost.bundle import import_results

    inputs = (Path(results), Path(results).parent / "manifest.json")
    if any(Path(output).resolve() == Path(given).resolve() for given in inputs):
        raise HwnasError(f"-o {output}: is an input of the import (results or manifest); expected a new table file")
    table = import_results(results)
    table.save(output)
    if as_json:
        print(json_text({"table": output, "entries": len(table.entries), "meta": table.meta}))
        return 0
    print(f"wrote {output}: {len(table.entries)} entries of {table.meta['space']} timed on {table.meta['device_name']}")
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from ..cost.build import load_or_build
    from ..report.tables import cell_latency_table, latency_table
    from ..spaces import load_space

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
                json_text({"meta": table.meta, "entries": table.entries})
                if args.json
                else cell_latency_table(space, table)
            )
        else:
            print(json_text(table.to_dict_for(space)) if args.json else latency_table(space, table))
        return 0
    from ..cost.validate import DRIFT_LIMIT_PCT, VALIDATION_ROUNDS, validate_table

    policy = dataclasses.replace(VALIDATION_ROUNDS, min_seconds=args.seconds)
    report = validate_table(space, table, samples=args.samples, seed=args.seed, policy=policy, progress=not args.json)
    if args.json:
        print(json_text(report.to_dict()))
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
    if report.speed_ratio is not None:
        print(
            f"  the machine since the table was built: its {report.calibration_networks} calibration networks, timed "
            f"again with these, ran {report.speed_ratio:.3f}x their time then ({report.drift_pct:+.1f}%); the table "
            f"at today's speed: mean error {report.mean_error_pct_at_speed:.1f}%, "
            f"max {report.max_error_pct_at_speed:.1f}%"
        )
    if report.drifted:
        print(
            f"  the machine's speed moved {report.drift_pct:+.1f}% since the table was built (more than "
            f"{DRIFT_LIMIT_PCT:.0f}%): the table's errors measure that move as much as the table; judge the table by "
            f"its errors at today's speed"
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


def add_latency(add: Adder) -> None:
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
    p.add_argument("--input", type=input_size, help=INPUT_HELP)
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
