"""Latency predictions run after run: `hwnas latency validate` on fresh tables, processes minutes apart.

    python bench/latency_repeat.py [--spaces fbnet fbnet_small] [--runs 5] [--gap 60] [--samples 50]

Each run, for each space, builds a table in an empty cache (`hwnas latency SPACE --json`, its own
process) and validates it (`hwnas latency validate SPACE --json`, another process); from the second
run on, the first run's table is validated again too ("aged": built minutes earlier, when the machine
may have run at another speed). Runs are `--gap` seconds apart. A run meets the target when Spearman
>= 0.95 and the mean error <= 5%; both the table's own errors and its errors at the speed the machine
ran during the validation (the table scaled by its re-timed calibration networks) are printed, with
the drift that scale measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SPEARMAN, MEAN_ERROR = 0.95, 5.0


def hwnas(cache: str, *args: str) -> dict:
    env = {**os.environ, "HWNAS_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-m", "hwnas", *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def validate(cache: str, space: str, samples: int) -> dict:
    report = hwnas(cache, "latency", "validate", space, "--samples", str(samples), "--json")
    return {
        key: report[key]
        for key in ("spearman", "mean_error_pct", "mean_error_pct_at_speed", "drift_pct", "offset_ms", "seconds")
    }


def meets(spearman: float, error: float) -> bool:
    return spearman >= SPEARMAN and error <= MEAN_ERROR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["fbnet", "fbnet_small"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gap", type=float, default=60.0, help="seconds between runs")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        first = {space: os.path.join(tmp, f"first-{space}") for space in args.spaces}
        for run in range(1, args.runs + 1):
            if run > 1:
                time.sleep(args.gap)
            for space in args.spaces:
                cache = first[space] if run == 1 else tempfile.mkdtemp(dir=tmp)
                table = hwnas(cache, "latency", space, "--json")["meta"]
                row = {"run": run, "space": space, "table": "fresh", "built": table["created"]}
                rows.append({**row, **validate(cache, space, args.samples)})
                print(json.dumps(rows[-1]), flush=True)
                if run > 1:
                    rows.append({**row, "table": "aged", **validate(first[space], space, args.samples)})
                    print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.samples} random networks per validation; target Spearman >= {SPEARMAN}, error <= {MEAN_ERROR}%")
    print(
        f"{'space':12} {'run':>3} {'table':6} {'Spearman':>8} {'err%':>6} {'drift%':>7} {'err% now':>8} "
        f"{'offset ms':>9} {'meets':>5}"
    )
    for r in rows:
        print(
            f"{r['space']:12} {r['run']:>3} {r['table']:6} {r['spearman']:>8.3f} {r['mean_error_pct']:>6.1f} "
            f"{r['drift_pct']:>+7.1f} {r['mean_error_pct_at_speed']:>8.1f} {r['offset_ms']:>9.3f} "
            f"{'yes' if meets(r['spearman'], r['mean_error_pct']) else 'no':>5}"
        )
    for space in args.spaces:
        for kind in ("fresh", "aged"):
            mine = [r for r in rows if r["space"] == space and r["table"] == kind]
            if not mine:
                continue
            own = sum(meets(r["spearman"], r["mean_error_pct"]) for r in mine)
            now = sum(meets(r["spearman"], r["mean_error_pct_at_speed"]) for r in mine)
            print(
                f"{space} {kind} tables: {own} of {len(mine)} runs meet the target with the table's own errors, "
                f"{now} of {len(mine)} at the speed measured during validation; drift "
                f"{min(r['drift_pct'] for r in mine):+.1f}% to {max(r['drift_pct'] for r in mine):+.1f}%"
            )


if __name__ == "__main__":
    main()
