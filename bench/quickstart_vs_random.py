"""Is the quickstart's DNAS pick at least as good as a random network under the same latency target?

    python bench/quickstart_vs_random.py                       # reads runs/quickstart (make quickstart)
    python bench/quickstart_vs_random.py --archs 16 --seeds 3  # the defaults

Draws `--archs` distinct architectures of the quickstart's space uniformly at random among those the
quickstart's latency table prices within its target, and retrains each of them and the quickstart's
found architecture from scratch with the quickstart's own retraining recipe, `--seeds` seeds each (the
same seeds for all). Reports each architecture's mean top-1 on the 360 held-out test digits, the median
over the random ones, and where the DNAS pick ranks among them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("quickstart_vs_random")


def retrain(task: tuple[list[str], int, int]) -> dict:
    """Top-1 on the held-out test digits of `choices` retrained with the quickstart's recipe and `seed`."""
    choices, seed, epochs = task
    import torch

    from hwnas.arch import Architecture
    from hwnas.engine.config import TrainConfig
    from hwnas.quickstart import RETRAIN_RECIPE, SPACE
    from hwnas.spaces import load_space
    from hwnas.standalone import train

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="hwnas-qs-") as tmp:
        cfg = TrainConfig(**RETRAIN_RECIPE, epochs=epochs, seed=seed, progress=False, run_dir=str(Path(tmp) / "run"))
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            result = train(Architecture.from_space(load_space(SPACE), choices), cfg)
    return {"choices": choices, "seed": seed, "top1": result.final["val_top1"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/quickstart"), help="a finished quickstart folder")
    parser.add_argument("--archs", type=int, default=16, help="random architectures under the target")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15, help="retraining epochs (the quickstart's default)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (1 thread each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    from hwnas.cost.build import load_or_build
    from hwnas.quickstart import SPACE, latency_target
    from hwnas.spaces import load_space

    report = json.loads((args.run / "report.json").read_text())
    space = load_space(SPACE)
    table = load_or_build(space)
    target = report["latency_target_ms"]
    if abs(latency_target(table, space)[2] - target) > 1e-3:
        log.warning("the cost table here gives another target than the quickstart's %.3f ms", target)
    rng = random.Random(0)
    drawn: dict[str, list[str]] = {}
    while len(drawn) < args.archs:
        choices = [rng.choice(layer.candidates) for layer in space.layers]
        if table.predict(space, choices) <= target and choices != report["architecture"]:
            drawn.setdefault(" ".join(choices), choices)
    archs = {"dnas": report["architecture"], **{f"random {i}": c for i, c in enumerate(drawn.values())}}
    tasks = [(c, seed, args.epochs) for c in archs.values() for seed in range(args.seeds)]
    start = time.perf_counter()
    results: dict[str, list[float]] = {" ".join(c): [] for c in archs.values()}
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for i, row in enumerate(pool.imap_unordered(retrain, tasks), 1):
            results[" ".join(row["choices"])].append(row["top1"])
            log.info("%d/%d retrainings done (%.0f s)", i, len(tasks), time.perf_counter() - start)
    means = {name: statistics.fmean(results[" ".join(c)]) for name, c in archs.items()}
    random_means = sorted(v for k, v in means.items() if k != "dnas")
    median = statistics.median(random_means)
    below = sum(v < means["dnas"] for v in random_means)
    print(f"{SPACE}, latency target {target:.3f} ms; {args.epochs} epochs, seeds 0-{args.seeds - 1}, top-1 on the")
    print("360 held-out test digits (mean over seeds)")
    for name, c in sorted(archs.items(), key=lambda kv: -means[kv[0]]):
        runs = " ".join(f"{v:.2f}" for v in results[" ".join(c)])
        latency = table.predict(space, c)
        print(f"  {name:<10} {means[name]:6.2f}%  ({runs})  {latency:.3f} ms  {' '.join(c)}")
    print(f"DNAS pick {means['dnas']:.2f}% against the median random architecture {median:.2f}%;")
    print(f"it is more accurate than {below} of the {len(random_means)} random architectures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
