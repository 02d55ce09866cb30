"""The one-shot examples end to end on four spaces: SPOS/FairNAS supernets, then random, evolutionary and
Pareto search over each, and soft DNAS (softmax, gumbel) on the same space; prints what each run picked
and how long it took. (Was a test that asserted only that the runs finished: it lives here now.)

    python bench/oneshot_matrix.py [--spaces proxylessnas fbnet spos single_path]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hwnas.strategies.config import DnasConfig, SupernetConfig
from hwnas.strategies.registry import strategy as registered_strategy
from hwnas.strategies.run import search, train_supernet

COMMON = {"flip": False, "crop_padding": 0, "progress": False, "checkpoint_every": 0, "classes": "3", "batch_size": 64}
EVOLUTION = {"generation_num": 2, "population": 3, "parent_num": 2, "mutation_num": 2, "crossover_num": 1}
PICKERS = (
    ("random", {"random_iteration": 3}),
    ("evolution", EVOLUTION),
    ("pareto", {**EVOLUTION, "pareto_cost": "macs"}),
)
DNAS = {
    "epochs": 1,
    "weight_warmup_epochs": 0,
    "arch_optimizer": "sgd",
    "arch_lr": 0.05,
    "hw_loss": "add",
    "cost": "macs",
}


def small(space: str, folder: Path) -> Path:
    """`space` at a quarter width, 16x16 input, 10 classes."""
    path = folder / f"{space}_small.yaml"
    path.write_text(
        f"extends: {space}\nname: {space}_small\nknobs: {{width_mult: 0.25, input_size: [3, 16, 16], "
        f"num_classes: 10, last_channels: 64}}\n"
    )
    return path


def run_space(space: str, folder: Path) -> None:
    space_file = str(small(space, folder))
    for sampling in ("uniform", "fair"):
        start = time.perf_counter()
        sup = folder / f"{space}-{sampling}"
        trained = train_supernet(
            SupernetConfig(space=space_file, sampling=sampling, epochs=1, run_dir=str(sup), **COMMON)
        )
        print(
            f"{space:13} {sampling:8} supernet: best val top-1 {trained.summary['best'].get('val_top1', 0):.1f}% "
            f"({time.perf_counter() - start:.1f} s)"
        )
        for strategy, extra in PICKERS:
            start = time.perf_counter()
            cfg = registered_strategy(strategy).options(
                space=space_file,
                supernet=str(sup),
                recalibrate_batches=1,
                run_dir=str(folder / f"{space}-{sampling}-{strategy}"),
                **COMMON,
                **extra,
            )
            out = search(cfg)
            print(
                f"{space:13} {sampling:8} {strategy:9} {' '.join(out.summary['choices'])} "
                f"({time.perf_counter() - start:.1f} s)"
            )
    for mode in ("softmax", "gumbel"):
        start = time.perf_counter()
        cfg = DnasConfig(space=space_file, mode=mode, run_dir=str(folder / f"{space}-dnas-{mode}"), **DNAS, **COMMON)
        out = search(cfg)
        print(f"{space:13} dnas     {mode:9} {' '.join(out.summary['choices'])} ({time.perf_counter() - start:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["proxylessnas", "fbnet", "spos", "single_path"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for space in args.spaces:
            run_space(space, Path(folder))


if __name__ == "__main__":
    main()
