"""`hwnas quickstart`: search, sample, retrain, profile and export on the bundled digits, end to end."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from .arch import Architecture
from .cost import measure_latency, profile_arch
from .cost.build import load_or_build
from .cost.table import CostTable
from .cost.validate import VALIDATION_ROUNDS, validate_table
from .engine.config import TrainConfig
from .errors import HwnasError
from .export import export
from .io import atomic_write_text
from .model import build_model
from .spaces import SpaceSpec, load_space
from .standalone import train
from .strategies.config import DnasConfig
from .strategies.run import search

SPACE = "fbnet_small"
MARKER = "quickstart.json"
TARGET_SHARE = 0.6  # the latency target: this far from the fastest network of the space to the slowest
QUICKSTART_CHECK = dataclasses.replace(VALIDATION_ROUNDS, min_seconds=8.0)  # 10 networks timed over 8 s
SEARCH_RECIPE: dict[str, Any] = {
    "data": "digits",
    "input": "3x16x16",  # fbnet_small's own input size, asked for: the 8x8 digits are upsampled to it
    "weight_warmup_epochs": 3,
    "lr": 0.05,
    "flip": False,
    "crop_padding": 2,
    "hw_loss": "add",
    "hc_weight": 0.5,
    "arch_lr": 0.1,
    "train_portion": 0.5,
}
RETRAIN_RECIPE: dict[str, Any] = {"data": "digits", "input": "3x16x16", "lr": 0.05, "flip": False, "crop_padding": 2}


def _fresh(out: Path) -> None:
    """Empty `out` if it is an earlier quickstart's folder (or empty); refuse anything else."""
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out} is a file, expected a folder (new, empty or an earlier quickstart's)")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise HwnasError(f"--out {out} is not empty and not an earlier quickstart's folder; choose another")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, json.dumps({"started": time.strftime("%Y-%m-%dT%H:%M:%S")}))


logger = logging.getLogger(__name__)


def _say(message: str) -> None:
    logger.info(f"\n== {message}")


def latency_target(table: CostTable, space: SpaceSpec) -> tuple[float, float, float]:
    """The fastest and slowest network the table prices in `space`, and the quickstart's target between them."""
    fixed, rows = table.matrix(space)
    low, high = fixed + sum(min(r) for r in rows), fixed + sum(max(r) for r in rows)
    return low, high, round(low + TARGET_SHARE * (high - low), 3)


def run_quickstart(out: str | Path = "runs/quickstart", search_epochs: int = 8, train_epochs: int = 15) -> dict:
    out = Path(out)
    start = time.time()
    _fresh(out)
    space = load_space(SPACE)
    _say(f"1/5 latency table of {SPACE} on this CPU (1 thread pinned), and how well its sums predict networks")
    table = load_or_build(space)
    check = validate_table(space, table, samples=10, policy=QUICKSTART_CHECK)
    low, high, target = latency_target(table, space)
    _say(f"2/5 DNAS search of {SPACE} on digits, latency target {target} ms (networks span {low:.3f}-{high:.3f} ms)")
    searched = search(
        DnasConfig(**SEARCH_RECIPE, space=SPACE, epochs=search_epochs, target=target, run_dir=str(out / "search"))
    )
    arch = Architecture.load(searched.arch_path)
    _say(f"3/5 retraining the found architecture from scratch ({train_epochs} epochs)")
    trained = train(
        searched.arch_path,
        TrainConfig(**RETRAIN_RECIPE, epochs=train_epochs, run_dir=str(out / "train")),
    )
    _say("4/5 profiling the retrained network")
    deployed = Architecture.load(out / "train" / "arch.json")
    profile = profile_arch(deployed)
    latency = measure_latency(build_model(deployed), deployed.spec.input_size, threads=1, min_run_time=4.0)
    predicted_sum = table.predict(space, arch.choices) - table.offset_ms
    _say("5/5 exporting to ONNX and checking it in ONNX Runtime")
    exported = export(deployed, out / "model.onnx", weights=out / "train" / "model.pt")
    report: dict[str, Any] = {
        "space": SPACE,
        "architecture": list(arch.choices),
        "latency_target_ms": target,
        "val_top1_retrained": trained.final["val_top1"],
        "val_images": trained.final["val_images"],
        "params": profile.params,
        "macs": profile.macs,
        "latency_measured_ms": latency.min_ms,
        "latency_predicted_sum_ms": predicted_sum,
        "latency_predicted_with_offset_ms": predicted_sum + table.offset_ms,
        "table_check": {
            "samples": check.samples,
            "mean_error_pct": check.mean_error_pct,
            "spearman": check.spearman,
            "offset_ms": check.offset_ms,
            "calibration_networks": check.calibration_networks,
            "mean_error_pct_without_offset": check.mean_error_pct_without_offset,
        },
        "onnx_max_abs_diff": exported["max_abs_diff"],
        "seconds": round(time.time() - start, 1),
        "files": {
            "architecture": str(searched.arch_path),
            "theta_heatmap": str(out / "search" / "theta.png"),
            "weights": str(out / "train" / "model.pt"),
            "onnx": str(out / "model.onnx"),
            "report": str(out / "report.json"),
        },
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))
    print(_render(report, torch.get_num_threads()))
    return report


def _render(r: dict[str, Any], threads: int) -> str:
    minutes, seconds = divmod(int(r["seconds"]), 60)
    check = r["table_check"]
    lines = [
        f"quickstart report: {minutes}m{seconds:02d}s on {threads} CPU threads",
        f"  searched    {r['space']} on digits with DNAS under a {r['latency_target_ms']} ms latency target",
        f"  found       {' '.join(r['architecture'])}",
        f"  retrained   val top-1 {r['val_top1_retrained']:.2f}% (the shipped weights, model.pt, on the "
        f"{r['val_images']} held-out test digits)",
        f"  latency     measured {r['latency_measured_ms']:.3f} ms (CPU, 1 thread, batch 1, fastest block); "
        f"table {r['latency_predicted_with_offset_ms']:.3f} ms (entries {r['latency_predicted_sum_ms']:.3f} ms + "
        f"offset fitted on {check['calibration_networks']} networks)",
        f"  table check {check['samples']} other random networks: mean error {check['mean_error_pct']:.1f}% "
        f"(entries alone {check['mean_error_pct_without_offset']:.1f}%), Spearman {check['spearman']:.2f}",
        f"  size        {r['params']:,} params, {r['macs'] / 1e6:.2f}M MACs",
        f"  ONNX        max |diff| vs PyTorch {r['onnx_max_abs_diff']:.1e}",
        "  files       " + "\n              ".join(r["files"].values()),
    ]
    return "\n".join(lines)
