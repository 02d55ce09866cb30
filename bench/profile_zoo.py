"""Build time and CPU latency of every zoo model, and start-up time of the CLI.

    python bench/profile_zoo.py [--threads 2] [--batch 1] [--min-run-time 2] [--device cpu]

Latency is the median of torch.utils.benchmark's blocked_autorange (after warm-up), in eval
mode under inference_mode, with the thread count pinned. Build time is the median of 5 builds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

from hwnas import zoo
from hwnas.arch import Architecture
from hwnas.cost import measure_latency, profile_arch
from hwnas.model import build_model


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli_seconds(args: list[str], env: dict[str, str], repeats: int = 5) -> float:
    return median_seconds(
        lambda: subprocess.run([sys.executable, "-m", "hwnas", *args], env=env, check=True, capture_output=True),
        repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, device {args.device}")
    print(f"{'model':20} {'params':>10} {'MACs (M)':>9} {'build (ms)':>10} {'latency (ms)':>12} {'IQR':>7} {'runs':>5}")
    for name in zoo.names():
        arch = Architecture.from_zoo(name)
        build_s = median_seconds(lambda arch=arch: build_model(arch), 5)
        model = build_model(arch)
        profile = profile_arch(arch, model)
        lat = measure_latency(
            model,
            arch.spec.input_size,
            device=args.device,
            batch=args.batch,
            threads=args.threads,
            min_run_time=args.min_run_time,
        )
        print(
            f"{name:20} {profile.params:>10,} {profile.macs / 1e6:>9.1f} {build_s * 1e3:>10.1f} "
            f"{lat.median_ms:>12.2f} {lat.iqr_ms:>7.2f} {lat.runs:>5}"
        )

    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "HWNAS_CACHE_DIR": cache}
        print(f"hwnas --help: {cli_seconds(['--help'], env) * 1e3:.0f} ms (median of 5)")
        print(f"hwnas zoo, cold cache: {cli_seconds(['zoo'], env, repeats=1) * 1e3:.0f} ms")
        print(f"hwnas zoo, warm cache: {cli_seconds(['zoo'], env) * 1e3:.0f} ms (median of 5)")


if __name__ == "__main__":
    main()
