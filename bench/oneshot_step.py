"""One-shot supernet steps against standalone networks, and candidate-evaluation throughput.

    python bench/oneshot_step.py [--threads 2] [--batch 64] [--steps 10] [--channels-last on|off|default]

On fbnet_cifar (22 x 9, 32x32) with random inputs:
- `uniform`: a supernet training step on one sampled path vs the step of that path's standalone
  network (built with build_model), over the same paths; target <= 1.1x;
- `fair`: one FairNAS step (9 paths, one update) vs the 9 standalone networks' steps;
- `sandwich`: one sandwich step (largest, smallest and 2 random paths, in-place distillation) vs the 4
  standalone networks' steps;
- candidate evaluation with inherited weights and BatchNorm recalibration (10 batches), on digits
  at 32x32 (180 validation images), in candidates per minute.
Medians over the timed steps after warm-up. `--channels-last` sets both sides' memory format (default:
each trainer's own default); run `on` and `off` in separate processes, alternating, to compare them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch


def median_time(fn, n: int, warmup: int = 2) -> float:
    times = []
    for i in range(n + warmup):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from hwnas.arch import Architecture
    from hwnas.data import Batch, Preprocess
    from hwnas.data.imageset import ImageSet, TensorSource
    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.model import build_model
    from hwnas.pipeline import open_run_data
    from hwnas.spaces import load_space
    from hwnas.strategies.config import RandomSearchConfig, SupernetConfig
    from hwnas.strategies.evolution import PathEvaluator
    from hwnas.strategies.oneshot import OneShotTrainer
    from hwnas.strategies.paths import uniform_path
    from hwnas.supernet import Supernet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--channels-last", choices=("on", "off", "default"), default="default")
    args = parser.parse_args()
    channels_last = {"on": True, "off": False, "default": None}[args.channels_last]
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    space = load_space("fbnet_cifar")
    counts = [len(la.candidates) for la in space.layers]
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch,))
    data = ImageSet(TensorSource(images), labels)
    pre = Preprocess((3, 32, 32), (0.5,), (0.25,))
    x = pre(Batch(images, labels, torch.arange(args.batch)), cpu)
    rng = random.Random(0)

    def standalone_step(path) -> float:
        arch = Architecture.from_space(space, [la.candidates[i] for la, i in zip(space.layers, path, strict=True)])
        trainer = Trainer(
            build_model(arch),
            TrainConfig(batch_size=args.batch, progress=False, channels_last=channels_last),
            train_set=data,
            val_set=data,
            preprocess=pre,
            device=cpu,
        )
        inputs = x.contiguous(memory_format=torch.channels_last) if trainer.channels_last else x
        return median_time(lambda: trainer.train_step(inputs, labels), 3)

    for sampling in ("uniform", "fair", "sandwich"):
        trainer = OneShotTrainer(
            Supernet(space),
            SupernetConfig(sampling=sampling, batch_size=args.batch, progress=False, channels_last=channels_last),
            train_set=data,
            val_set=data,
            preprocess=pre,
            device=cpu,
        )
        drawn = []
        for step in range(args.steps):  # the paths the trainer itself draws at these steps
            trainer.step = step
            drawn.append(trainer.paths())
        inputs = x.contiguous(memory_format=torch.channels_last) if trainer.channels_last else x
        supernet_times, standalone_times = [], []
        for paths in drawn:
            trainer.paths = lambda paths=paths: paths
            supernet_times.append(median_time(lambda t=trainer, x=inputs: t.train_step(x, labels), 2, warmup=1))
            standalone_times.append(sum(standalone_step(p) for p in paths))
        s, a = statistics.median(supernet_times), statistics.median(standalone_times)
        against = "the same path" if sampling == "uniform" else f"the {len(drawn[0])} networks"
        print(
            f"{sampling:8} supernet step {s:.3f} s vs standalone {a:.3f} s ({against}): {s / a:.2f}x "
            f"(channels_last: {trainer.channels_last})",
            flush=True,
        )

    cfg = RandomSearchConfig(
        space="fbnet_cifar",
        data="digits",
        input="3x32x32",
        batch_size=args.batch,
        progress=False,
        recalibrate_batches=10,
    )
    run_data = open_run_data(cfg, (3, 32, 32))
    evaluator = PathEvaluator(Supernet(space.with_knobs(num_classes=10)), run_data, cfg, cpu)
    n = max(5, args.steps)
    start = time.perf_counter()
    for _ in range(n):
        evaluator.accuracy(uniform_path(counts, rng))
    per_min = n / (time.perf_counter() - start) * 60
    print(
        f"candidate evaluation (BN recalibration on 10 batches of {args.batch}, 180 validation images): "
        f"{per_min:.1f} candidates/min"
    )


if __name__ == "__main__":
    main()
