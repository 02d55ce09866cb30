"""Latency tables, this implementation against the reference (the tables of hwnas at commit 5e83eb8):
build time and how well each predicts whole networks, on this machine, in one run.

    python bench/latency_tables.py [--spaces fbnet fbnet_small] [--runs 2] [--samples 50]
                                   [--reference-commit 5e83eb8]

The reference is checked out into a temporary git worktree and run as its own `hwnas` (PYTHONPATH),
so both implementations run on the same machine in the same session, alternating: for each run and
space, the reference then this one, each building its table in an empty cache (`hwnas latency SPACE
--json`) and validating it (`hwnas latency validate SPACE --samples N --json`). Each implementation
is judged by its own `latency validate` (the reference times each network alone for 0.5 s and prices
entries by their median; this one times networks in interleaved rounds, see hwnas.cost.interleaved).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hwnas(source: Path, cache: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(source), "HWNAS_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, "-m", "hwnas", *args], env=env, cwd=source, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def one(source: Path, space: str, samples: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        start = time.time()
        table = hwnas(source, cache, "latency", space, "--json")
        wall = time.time() - start
        report = hwnas(source, cache, "latency", "validate", space, "--samples", str(samples), "--json")
    meta = table["meta"]
    calibration = meta.get("calibration_fit", {})
    mean_error = report["mean_error_pct"] if "calibration_fit" in meta else report.get("mean_error_pct_with_offset")
    return {
        "entries_s": meta["seconds"],
        "calibration_s": calibration.get("seconds", 0.0),
        "table_wall_s": round(wall, 1),
        "spearman": report["spearman"],
        "mean_error_raw_pct": report.get("mean_error_pct_without_offset", report["mean_error_pct"]),
        "mean_error_pct": mean_error,
        "repeatability": report.get("repeatability_spearman"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["fbnet", "fbnet_small"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--reference-commit", default="5e83eb8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(reference), args.reference_commit],
            check=True,
            capture_output=True,
        )
        try:
            rows = []
            for run in range(1, args.runs + 1):
                for space in args.spaces:
                    for name, source in (("reference", reference), ("hwnas", ROOT)):
                        row = {"run": run, "space": space, "implementation": name, **one(source, space, args.samples)}
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(reference)], check=True)
    print(f"\n{args.samples} random networks per validation; entries / calibration / table wall in seconds")
    print(
        f"{'space':12} {'run':>3} {'implementation':14} {'entries':>7} {'calib':>6} {'wall':>6} {'Spearman':>8} "
        f"{'raw err%':>8} {'err%':>6} {'repeat':>6}"
    )
    for r in rows:
        repeat = "-" if r["repeatability"] is None else f"{r['repeatability']:.3f}"
        print(
            f"{r['space']:12} {r['run']:>3} {r['implementation']:14} {r['entries_s']:>7.1f} {r['calibration_s']:>6.1f} "
            f"{r['table_wall_s']:>6.1f} {r['spearman']:>8.3f} {r['mean_error_raw_pct']:>8.1f} "
            f"{r['mean_error_pct']:>6.1f} {repeat:>6}"
        )
    for space in args.spaces:
        for run in range(1, args.runs + 1):
            ref, new = (
                next(r for r in rows if r["space"] == space and r["run"] == run and r["implementation"] == i)
                for i in ("reference", "hwnas")
            )
            print(
                f"{space} run {run}: table entries {new['entries_s'] / ref['entries_s']:.2f}x the reference's time; "
                f"Spearman {ref['spearman']:.3f} -> {new['spearman']:.3f}; mean error {ref['mean_error_pct']:.1f}% -> "
                f"{new['mean_error_pct']:.1f}%"
            )


if __name__ == "__main__":
    main()
