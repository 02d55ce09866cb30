"""Latency tables for devices hwnas does not run on: a bundle of ONNX models timed there, imported back as a table.

FBNet priced every candidate of every layer on the phone it targeted. `write_bundle` exports each entry a cost
table of a space needs (the units `build_table` measures, each distinct key once) as a stand-alone ONNX file,
with `manifest.json` (the space, the table's key fields, per entry its key, file, input shape, MACs and params)
and `run_bundle.py`, a script that needs only Python 3 and onnxruntime. It times the models on the device and
writes `results.json`; `import_results` turns that into a `CostTable` whose `meta.device` starts with
`bundle:`, for `--latency-table` in any search.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..errors import HwnasError
from ..export import quiet_onnx_export
from ..io import atomic_write, atomic_write_text, json_text, read_plain_bytes
from ..readers import load_json
from ..spaces import CellSpaceSpec, SpaceSpec
from .counting import count
from .run_bundle import MANIFEST_FORMAT, MODEL_FILE, RESULTS_FORMAT
from .table import CostTable, space_units

RUNNER = Path(__file__).with_name("run_bundle.py")
OPSET = 17  # ONNX Runtime 1.14 and later run it: the versions phones, Raspberry Pis and Jetsons ship
BUNDLE_DEVICE_PREFIX = "bundle:"  # a table's `meta.device` when its latency was timed by a bundle's runner

logger = logging.getLogger(__name__)


def manifest_fingerprint(manifest: dict[str, Any]) -> str:
    """Hash of a manifest's table key and entries (their files' contents included): the bundle's identity."""
    blob = json.dumps({"key": manifest["key"], "entries": manifest["entries"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def onnx_bytes(module: torch.nn.Module, shape: tuple[int, ...]) -> bytes:
    """`module` in eval mode as an ONNX model with one input named `input` of exactly `shape`."""
    buffer = io.BytesIO()
    with quiet_onnx_export():
        # the TorchScript-based exporter, as the onnxruntime latency device: fast per module, opset pinned
        torch.onnx.export(
            module.eval(),
            (torch.randn(*shape),),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            opset_version=OPSET,
        )
    return buffer.getvalue()


def write_bundle(
    space: SpaceSpec | CellSpaceSpec, directory: str | Path, *, batch: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Write the bundle of `space` (models/, manifest.json, run_bundle.py) into the new or empty `directory`,
    for a `batch` of inputs; returns the manifest. Leaves the caller's random state as it was."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise HwnasError(f"bundle folder {directory}: exists and is not empty; expected a new or empty folder")
    if not (isinstance(batch, int) and batch >= 1):
        raise HwnasError(f"batch {batch!r}: expected an integer >= 1")
    units = space_units(space)
    entries = []
    with torch.random.fork_rng(devices=[]):
        for i, (key, unit) in enumerate(
            tqdm(units.items(), disable=None if progress else True, file=sys.stderr, leave=False)
        ):
            module = unit.build()
            counted = count(module, unit.input_shape, [(key, unit.op, module)])
            data = onnx_bytes(module, (batch, *unit.input_shape))
            file = f"models/{i:04d}_{re.sub(r'[^A-Za-z0-9_]+', '_', unit.op)}.onnx"
            atomic_write(directory / file, lambda f, data=data: f.write(data))
            entries.append(
                {
                    "key": key,
                    "file": file,
                    "input_shape": [batch, *unit.input_shape],
                    "macs": counted.macs,
                    "params": counted.params,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "space": space.name,
        "key": {
            "space": space.name,
            "space_fingerprint": space.fingerprint(),
            "batch": batch,
            "dtype": "float32",
            "torch": torch.__version__,
            "onnx_opset": OPSET,
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "entries": entries,
    }
    manifest["fingerprint"] = manifest_fingerprint(manifest)
    atomic_write_text(directory / RUNNER.name, RUNNER.read_text())
    atomic_write_text(directory / "manifest.json", json_text(manifest, indent=1) + "\n")
    return manifest


def is_bundle_table(table: CostTable) -> bool:
    """Whether `table`'s latency was timed on another device by a bundle's runner."""
    return str(table.meta.get("device", "")).startswith(BUNDLE_DEVICE_PREFIX)


def read_manifest(path: Path) -> dict[str, Any]:
    """A bundle's manifest.json, checked against its own fingerprint."""
    manifest = load_json(path, "bundle manifest")
    try:
        ok = manifest["format"] == MANIFEST_FORMAT and manifest_fingerprint(manifest) == manifest["fingerprint"]
        for entry in manifest["entries"]:
            ok = ok and isinstance(entry["key"], str) and int(entry["macs"]) >= 0 and int(entry["params"]) >= 0
            ok = ok and bool(MODEL_FILE.fullmatch(str(entry["file"]))) and isinstance(entry["sha256"], str)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise HwnasError(
            f"bundle manifest {path}: not as `hwnas latency bundle` wrote it (format {MANIFEST_FORMAT!r}, entries "
            f"matching its fingerprint); expected the manifest.json of the bundle that was timed"
        )
    return manifest


def check_models(manifest: dict[str, Any], directory: Path) -> None:
    """Every model of the bundle is the plain file the manifest records (its sha256): the times imported are the
    times of the networks the table prices."""
    for entry in manifest["entries"]:
        path = directory / entry["file"]
        try:
            data = read_plain_bytes(path, "bundle model")
        except OSError as exc:
            raise HwnasError(
                f"bundle model {path}: cannot read ({exc.strerror}); expected the bundle's models/"
            ) from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise HwnasError(
                f"bundle model {path}: its sha256 differs from the manifest's; expected the model the bundle was "
                "written with (the times would be another network's)"
            )


def printable(value: Any, limit: int = 120) -> str:
    """A device's self-description as one short line: control characters (terminal escapes, newlines) dropped,
    at most `limit` characters."""
    text = "".join(c for c in str(value) if c.isprintable())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def checked_latency(value: Any, where: str) -> dict[str, Any]:
    """A results entry's `latency_ms` field as a table holds it: finite times >= 0 ms and a count >= 1."""
    if not isinstance(value, dict):
        raise HwnasError(f"{where}: latency_ms is {value!r}; expected an object with median, mean, std and count")
    latency: dict[str, Any] = {}
    for name in ("median", "mean", "std"):
        ms = value.get(name)
        try:
            ok = not isinstance(ms, bool) and isinstance(ms, (int, float)) and math.isfinite(ms) and ms >= 0
        except OverflowError:  # an integer too large for a float
            ok = False
        if not ok or (name != "std" and ms == 0):
            shown = repr(ms) if len(repr(ms)) < 40 else f"{repr(ms)[:30]}… ({len(repr(ms))} characters)"
            expected = "a finite time > 0 ms" if name != "std" else "a finite spread >= 0 ms"
            raise HwnasError(f"{where}: latency_ms.{name} is {shown}; expected {expected}")
        latency[name] = float(ms)
    runs = value.get("count")
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= 10**9:
        raise HwnasError(f"{where}: latency_ms.count is {runs!r}; expected an integer >= 1")
    latency["count"] = runs
    return latency


def import_results(path: str | Path) -> CostTable:
    """The cost table of what `run_bundle.py` wrote to `path` (results.json, beside its bundle's manifest.json):
    latency from the results, MACs and params from the manifest, `meta` naming the device timed."""
    path = Path(path)
    results = load_json(path, "bundle results")
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise HwnasError(f"bundle results {path}: expected the results.json run_bundle.py writes ({RESULTS_FORMAT!r})")
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.is_file():
        raise HwnasError(f"bundle results {path}: no manifest.json beside it; expected it in its bundle's folder")
    manifest = read_manifest(manifest_path)
    check_models(manifest, path.parent)
    if results.get("fingerprint") != manifest["fingerprint"]:
        raise HwnasError(
            f"bundle results {path}: timed bundle {results.get('fingerprint')!r}, but the manifest beside it is "
            f"bundle {manifest['fingerprint']!r}; expected the results of this bundle (rerun run_bundle.py)"
        )
    timed, device = results.get("entries"), results.get("device")
    if not isinstance(timed, dict) or not isinstance(device, dict):
        raise HwnasError(f"bundle results {path}: expected objects `entries` and `device`")
    missing = [e["key"] for e in manifest["entries"] if e["key"] not in timed]
    if missing:
        raise HwnasError(
            f"bundle results {path}: no time for {missing[0]!r} ({len(missing)} of the bundle's "
            f"{len(manifest['entries'])} entries missing); expected every entry of the manifest (rerun run_bundle.py)"
        )
    entries = {}
    for entry in manifest["entries"]:
        timing = timed[entry["key"]]
        latency = checked_latency(
            timing.get("latency_ms") if isinstance(timing, dict) else timing,
            f"bundle results {path}: entry {entry['key']!r}",
        )
        entries[entry["key"]] = {"latency_ms": latency, "macs": int(entry["macs"]), "params": int(entry["params"])}
    providers = device.get("providers")
    provider = printable(providers[0], limit=60) if isinstance(providers, list) and providers else "unknown provider"
    ort_version = device.get("onnxruntime", "?")
    meta = {
        **manifest["key"],
        "device": BUNDLE_DEVICE_PREFIX + provider,
        "device_name": printable(
            f"{device.get('processor', '?')} ({device.get('machine', '?')}, {device.get('platform', '?')}), "
            f"onnxruntime {ort_version} {provider}",
            limit=300,
        ),
        "threads": device.get("threads") if isinstance(device.get("threads"), int) else None,
        "onnxruntime": printable(ort_version, limit=40),
        "bundle": manifest["fingerprint"],
        "timed_at": results.get("created"),
        "runs": results.get("runs"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "unit": "ms; macs and params per image",
    }
    return CostTable(meta, entries)
