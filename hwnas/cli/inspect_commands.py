"""The commands that look at architectures and spaces, or make files from them: zoo, spaces, show, profile,
export, predict, faces."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..engine.config import MAX_BATCH, MAX_THREADS
from ..io import json_text
from .flags import ARCH_HELP, INPUT_HELP, Adder, input_size, integer_flag

logger = logging.getLogger("hwnas.cli")


def _load(arch: str, input_size: list[int] | None):
    from ..arch import resolve_arch

    loaded = resolve_arch(arch)
    return loaded.with_space_args(input_size=input_size) if input_size else loaded


def cmd_zoo(args: argparse.Namespace) -> int:
    from ..report.zoo_table import zoo_rows, zoo_table

    rows = zoo_rows()
    print(json_text(rows, indent=2) if args.json else zoo_table(rows, markdown=args.markdown))
    return 0


def cmd_spaces(args: argparse.Namespace) -> int:
    from ..report.tables import cell_space_table, space_table
    from ..spaces import builtin_spaces, load_space

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
    from ..strategies.run import search_defaults

    spec = load_space(args.space)
    search_defaults(spec)  # a space's search defaults are options of `hwnas search`: checked as such
    print(spec.declaration.get("source", spec.origin))
    print(cell_space_table(spec) if spec.kind == "cell" else space_table(spec))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ..cost import profile_arch
    from ..report.tables import profile_table

    arch = _load(args.arch, args.input)
    print(profile_table(arch, profile_arch(arch)))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from ..cost import measure_latency, profile_arch
    from ..model import build_model

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
        print(json_text(result))
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
    from ..export import export

    arch = _load(args.arch, args.input)
    report = export(
        arch,
        args.output,
        fmt=args.format,
        weights=args.weights,
        verify=not args.no_verify,
        preprocess=args.preprocess,
    )
    print(json_text(report) if args.json else report["summary"])
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..inference import predict

    predictions = predict(args.arch, args.weights, args.images, top_k=args.top_k)
    if args.json:
        print(json_text({"arch": args.arch, "weights": args.weights, "predictions": predictions}))
        return 0
    for item in predictions:
        ranked = ", ".join(f"{top['label']} {100 * top['probability']:.1f}%" for top in item["top"])
        print(f"{item['image']}: {ranked}")
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.faces import write_identities, write_pairs

    root = Path(args.out)
    write_identities(root / "train", args.identities, args.per_identity, args.size, args.seed)
    write_identities(root / "test", args.test_identities, args.per_identity, args.size, args.seed + 1)
    pairs = write_pairs(root / "test", root / "pairs.txt", args.folds, args.per_fold, args.seed)
    logger.info(
        f"wrote {args.identities} training identities to {root / 'train'}, {args.test_identities} held-out ones to "
        f"{root / 'test'} ({args.per_identity} images each, {args.size}x{args.size}) and {pairs}"
    )
    return 0


def add_zoo(add: Adder) -> None:
    p = add("zoo", cmd_zoo, "list the zoo: params and MACs counted here beside the papers' figures")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON rows")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")


def add_spaces(add: Adder) -> None:
    p = add("spaces", cmd_spaces, "list the built-in search spaces, or show one space's layers and candidates")
    p.add_argument("space", nargs="?", help="built-in space name or space YAML path")


def add_show(add: Adder) -> None:
    p = add("show", cmd_show, "per-layer table of an architecture: op, shapes, params, MACs")
    p.add_argument("arch", help=ARCH_HELP)
    p.add_argument("--input", type=input_size, help=INPUT_HELP)


def add_profile(add: Adder) -> None:
    p = add("profile", cmd_profile, "params and MACs of an architecture (batch 1), optionally measured latency")
    p.add_argument("arch", help=ARCH_HELP)
    p.add_argument("--input", type=input_size, help=INPUT_HELP)
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


EXPORT_HELP = "export an architecture to ONNX, a torch.export program or (legacy) TorchScript, checked against PyTorch"


def add_export(add: Adder) -> None:
    p = add("export", cmd_export, EXPORT_HELP)
    p.add_argument("arch", help=ARCH_HELP)
    p.add_argument(
        "--format",
        choices=("onnx", "export", "torchscript"),
        required=True,
        help="onnx; export: a torch.export program (.pt2, load with torch.export.load); "
        "torchscript: legacy, prefer --format export",
    )
    p.add_argument("-o", "--output", required=True, help="file to write")
    p.add_argument("--weights", help="state dict (or checkpoint with a 'model' entry) to load first")
    p.add_argument("--input", type=input_size, help=INPUT_HELP)
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


PREDICT_HELP = "classify image files with trained weights, preprocessed as the architecture's pretrained_cfg records"


def add_predict(add: Adder) -> None:
    p = add("predict", cmd_predict, PREDICT_HELP)
    p.usage = "%(prog)s ARCH --weights FILE IMAGE [IMAGE ...] [--top-k K] [--json]"
    p.add_argument("arch", help="architecture file written by hwnas train or search (RUN_DIR/arch.json)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format PIL reads)")
    p.add_argument("--weights", required=True, metavar="FILE", help="the trained weights (RUN_DIR/model.pt)")
    p.add_argument(
        "--top-k", type=integer_flag(1, 1000), default=5, help="classes shown per image, most probable first"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_faces(add: Adder) -> None:
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
