"""How far below stand-alone training do the weights a one-shot search ships land, and what closes the gap?

    python bench/shipped_gap.py --task fonts16                      # uniform, fair, sandwich; 8 path passes
    python bench/shipped_gap.py --task fonts16 --sampling fair --path-passes 16 --finetune 0 1 2

For each sampling, one supernet is trained with `hwnas supernet train`'s defaults but its epochs (`--path-passes`:
the uniform supernet's epochs, divided by the paths a fair or sandwich step trains, as bench/search_quality.py does)
on the ground truth's data. Then `--archs` architectures drawn within the task's target (its 30th percentile of
latency) are shipped as a search ships its pick (`hwnas.strategies.inherited.make_shippable` and `ship`: weights
taken out of the supernet, BatchNorm re-estimated, fine-tuned `--finetune` epochs) and scored on the data's held-out
test pool, against their true accuracy in the table (stand-alone, mean of seeds). It prints, per sampling and
fine-tune, the mean and worst gap, Kendall's tau of the shipped accuracies against the true ones over those
architectures, and the seconds: the supernet's, and one fine-tune's, each also in stand-alone trainings (the table's
median train_seconds within the target, which this run does not time: a rough unit).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "groundtruth"))

import build as groundtruth  # noqa: E402  (bench/groundtruth/build.py)
from search_quality import SAMPLINGS, paths_per_step, quantile  # noqa: E402  (bench/search_quality.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fonts16", choices=groundtruth.tasks())
    parser.add_argument("--sampling", nargs="+", default=list(SAMPLINGS), choices=SAMPLINGS)
    parser.add_argument("--path-passes", type=int, default=8, help="the uniform supernet's epochs (default 8)")
    parser.add_argument("--finetune", type=int, nargs="+", default=[0, 1, 2], help="fine-tune epochs to compare")
    parser.add_argument("--archs", type=int, default=12, help="architectures within the target to ship")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quantile", type=float, default=0.3)
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="a supernet option")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import torch
    import yaml
    from scipy.stats import kendalltau

    from hwnas.pipeline import open_run_data
    from hwnas.spaces import load_space
    from hwnas.strategies.config import RandomSearchConfig, SupernetConfig
    from hwnas.strategies.inherited import make_shippable, ship
    from hwnas.strategies.run import train_supernet
    from hwnas.supernet import Supernet

    torch.set_num_threads(1)
    task = groundtruth.load_task(args.task)
    table = json.loads(task.table.read_text())["archs"]
    target = quantile([a["latency_ms"] for a in table], args.quantile)
    within = [a for a in table if a["latency_ms"] <= target]
    unit = statistics.median(a["train_seconds"] for a in within)
    archs = random.Random(args.seed).sample(within, min(args.archs, len(within)))
    extra = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    space = load_space(str(task.space))
    options = {"space": str(task.space), "data": task.recipe["data"], "input": task.recipe["input"]}
    options |= {"seed": args.seed, "progress": False, "device": "cpu"}
    print(
        f"{args.task}: target {target:.3f} ms ({len(within)} architectures within it), {len(archs)} of them "
        f"shipped; one stand-alone training within the target: {unit:.1f} s (the table's median)"
    )
    with tempfile.TemporaryDirectory(prefix="hwnas-gap-") as tmp:
        for sampling in args.sampling:
            epochs = max(1, args.path_passes // paths_per_step(sampling, space))
            run_dir = Path(tmp) / sampling
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                train_supernet(
                    SupernetConfig(**options, run_dir=str(run_dir), epochs=epochs, sampling=sampling, **extra)
                )
            trained = time.perf_counter() - start
            state = torch.load(run_dir / "supernet.pt", weights_only=True)
            print(f"\n{sampling}: {epochs} epochs, {trained:.0f} s ({trained / unit:.1f} stand-alone trainings)")
            for finetune in args.finetune:
                cfg = RandomSearchConfig(**options, run_dir=str(run_dir), finetune_epochs=finetune)
                data = open_run_data(cfg, space.input_size, choosing=True)
                gaps, shipped, seconds = [], [], []
                for k, arch in enumerate(archs):
                    supernet = Supernet(space)
                    supernet.load_state_dict(state["model"])
                    start = time.perf_counter()
                    with contextlib.redirect_stderr(io.StringIO()):
                        network = make_shippable(supernet, arch["choices"], data, cfg, torch.device("cpu"))
                        out = ship(network, data, cfg, torch.device("cpu"), Path(tmp), (f"m{k}.pt",))
                    seconds.append(time.perf_counter() - start)
                    shipped.append(out["test_top1"])
                    gaps.append(arch["mean"] - out["test_top1"])
                tau = kendalltau(shipped, [a["mean"] for a in archs]).statistic
                print(
                    f"  fine-tune {finetune} epochs: gap {statistics.fmean(gaps):.2f} points (worst {max(gaps):.2f}, "
                    f"best {min(gaps):.2f}); shipped top-1 {statistics.fmean(shipped):.2f}% against "
                    f"{statistics.fmean(a['mean'] for a in archs):.2f}% stand-alone; tau {tau:.2f}; "
                    f"{statistics.median(seconds):.1f} s a network ({statistics.median(seconds) / unit:.2f} trainings)",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
