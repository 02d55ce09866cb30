#!/usr/bin/env python3
"""Time the ONNX models of an hwnas latency bundle with ONNX Runtime on this device; write results.json.

`hwnas latency bundle SPACE -o DIR` writes this script into DIR with the models and manifest.json. Copy DIR to
the phone, Raspberry Pi or Jetson you target; there it needs only Python 3 and onnxruntime (and numpy):

    python3 run_bundle.py [DIR] [--runs 100] [--warmup 10] [--threads 1] [--provider CPUExecutionProvider]

Each model is loaded, warmed up and timed `--runs` times; DIR/results.json gets the median, mean, standard
deviation and count of each, and a description of the device. Bring results.json back beside manifest.json and
run `hwnas latency import DIR/results.json -o TABLE.json` to get a cost table for `--latency-table`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from typing import NoReturn

MANIFEST_FORMAT = "hwnas.bundle/1"
RESULTS_FORMAT = "hwnas.bundle-results/1"
MODEL_FILE = re.compile(r"models/[A-Za-z0-9_]+\.onnx")  # the names `hwnas latency bundle` gives its models


def fail(message: str) -> NoReturn:
    """Stop with one line on stderr."""
    raise SystemExit(f"run_bundle.py: {message}")


def cpu_name() -> str:
    """The processor's model name as /proc/cpuinfo gives it (x86 `model name`, Raspberry Pi `Model`)."""
    names = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                field, _, value = line.partition(":")
                names.setdefault(field.strip(), value.strip())
    except OSError:
        pass
    return names.get("model name") or names.get("Model") or platform.processor() or platform.machine()


def read_manifest(directory: str) -> dict:
    path = os.path.join(directory, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path} ({exc}); expected the folder `hwnas latency bundle` wrote")
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        fail(f"{path}: expected a manifest with format {MANIFEST_FORMAT!r}")
    return manifest


def model_bytes(directory: str, entry: dict) -> bytes:
    """The bytes of an entry's model: a plain file of the bundle's models/ folder (never a link or a path leading
    out of it) whose sha256 is the one the manifest records."""
    name = entry.get("file")
    if not isinstance(name, str) or not MODEL_FILE.fullmatch(name):
        fail(f"manifest entry {entry.get('key')!r}: file {name!r}; expected models/NAME.onnx inside the bundle")
    path = os.path.join(directory, name)
    if os.path.islink(path) or not os.path.isfile(path):
        fail(f"{path}: missing or not a plain file; expected every model the manifest lists")
    with open(path, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        fail(f"{path}: its sha256 differs from the manifest's; expected the model the bundle was written with")
    return data


def time_model(ort, numpy, model: bytes, shape: list, options, provider: str, warmup: int, runs: int) -> tuple:
    """(the `latency_ms` field of one entry, the providers the session used)."""
    session = ort.InferenceSession(model, options, providers=[provider])
    x = numpy.random.default_rng(0).standard_normal(shape).astype(numpy.float32)
    feed = {node.name: x for node in session.get_inputs()}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    latency = {
        "median": statistics.median(times),
        "mean": statistics.mean(times),
        "std": statistics.stdev(times) if len(times) > 1 else 0.0,
        "count": len(times),
    }
    return latency, session.get_providers()


def write_atomically(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".results.", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time an hwnas latency bundle with ONNX Runtime on this device.", allow_abbrev=False
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=os.path.dirname(os.path.abspath(__file__)),
        help="the folder `hwnas latency bundle` wrote (manifest.json, models/); default: this script's folder",
    )
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs per model first")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--provider", default="CPUExecutionProvider", help="ONNX Runtime execution provider")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        fail(
            f"--runs {args.runs}, --warmup {args.warmup}, --threads {args.threads}: expected runs >= 1, "
            "warmup >= 0, threads >= 1"
        )
    try:
        import numpy
        import onnxruntime as ort
    except ImportError as exc:
        fail(f"{exc}; expected onnxruntime installed (pip install onnxruntime)")
    if args.provider not in ort.get_available_providers():
        fail(f"provider {args.provider!r}: expected one of {', '.join(ort.get_available_providers())}")
    manifest = read_manifest(args.directory)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    entries, used, start = {}, [], time.time()
    for i, entry in enumerate(manifest["entries"], 1):
        model = model_bytes(args.directory, entry)
        latency, used = time_model(
            ort, numpy, model, entry["input_shape"], options, args.provider, args.warmup, args.runs
        )
        entries[entry["key"]] = {"file": entry["file"], "latency_ms": latency}
        print(f"[{i}/{len(manifest['entries'])}] {latency['median']:.4f} ms  {entry['key']}", flush=True)
    results = {
        "format": RESULTS_FORMAT,
        "fingerprint": manifest["fingerprint"],
        "space": manifest.get("space"),
        "device": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": cpu_name(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "providers_available": ort.get_available_providers(),
            "providers": used,
            "threads": args.threads,
        },
        "runs": args.runs,
        "warmup": args.warmup,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - start, 1),
        "entries": entries,
    }
    out = os.path.join(args.directory, "results.json")
    write_atomically(out, json.dumps(results, indent=1) + "\n")
    print(
        f"wrote {out}: {len(entries)} models timed on {cpu_name()} ({platform.machine()}), "
        f"onnxruntime {ort.__version__} {args.provider}, {args.threads} thread(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
