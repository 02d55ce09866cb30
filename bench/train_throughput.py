"""Training throughput of a zoo model, with the data pipeline on versus synthetic input on the device.

    python bench/train_throughput.py [--arch mobilenet_v2] [--device cpu] [--threads 2] [--amp off]
                                     [--channels-last on|off|default]

For each input size the script times training steps (forward, backward, SGD update) of the
Trainer: once fed by the real pipeline (EpochLoader over uint8 images in memory, on-device
resize, random crop with padding, flip, cutout, normalisation) and once with one batch that
already sits on the device. It prints medians over the timed steps, images/s, and the share
of each step spent in the pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hwnas.arch import Architecture
from hwnas.data import EpochLoader, Preprocess, open_dataset
from hwnas.engine.config import TrainConfig
from hwnas.engine.trainer import Trainer
from hwnas.model import build_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    arch_name: str, size: int, batch: int, steps: int, device: torch.device, amp: str, channels_last: bool | None
) -> dict:
    arch = Architecture.from_zoo(arch_name).with_space_args(input_size=[3, size, size], num_classes=10)
    pools = open_dataset("synthetic", (3, size, size))
    cfg = TrainConfig(
        batch_size=batch,
        epochs=1,
        progress=False,
        amp=amp,
        cutout=True,
        crop_padding=size // 8,
        channels_last=channels_last,
    )
    pre = Preprocess((3, size, size), pools.mean, pools.std, cfg.crop_padding, True, 16)
    trainer = Trainer(build_model(arch), cfg, train_set=pools.train, val_set=pools.test, preprocess=pre, device=device)
    loader = EpochLoader(pools.train, batch, train=True)
    plan = pre.plan(len(pools.train), 0, 0)
    warmup = 3

    def batches():
        epoch = 0
        while True:
            yield from loader.epoch(epoch)
            epoch += 1

    source = batches()
    fixed = next(source)
    layout = torch.channels_last if trainer.channels_last else torch.contiguous_format  # as Trainer.fit feeds it
    x_fixed, y_fixed = pre(fixed, device, plan).contiguous(memory_format=layout), fixed.labels.to(device)
    synthetic, total, pipeline = [], [], []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        trainer.train_step(x_fixed, y_fixed)
        sync(device)
        t1 = time.perf_counter()
        b = next(source)
        x, y = pre(b, device, plan).contiguous(memory_format=layout), b.labels.to(device)
        sync(device)
        t2 = time.perf_counter()
        trainer.train_step(x, y)
        sync(device)
        t3 = time.perf_counter()
        if i >= warmup:
            synthetic.append(t1 - t0)
            pipeline.append(t2 - t1)
            total.append(t3 - t1)
    return {
        "size": size,
        "batch": batch,
        "steps": steps,
        "synthetic_ms": 1e3 * statistics.median(synthetic),
        "pipeline_step_ms": 1e3 * statistics.median(total),
        "data_ms": 1e3 * statistics.median(pipeline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"))
    parser.add_argument("--sizes", default="32:64:30,224:16:10", help="SIZE:BATCH:STEPS,...")
    parser.add_argument(
        "--channels-last",
        choices=("on", "off", "default"),
        default="default",
        help="the memory format (default: hwnas's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    channels_last = {"on": True, "off": False, "default": None}[args.channels_last]
    print(
        f"{args.arch}, torch {torch.__version__}, device {device}, {args.threads} threads, amp {args.amp}, "
        f"channels_last {args.channels_last}"
    )
    print(
        f"{'input':>9} {'batch':>5} {'steps':>5} {'synthetic img/s':>15} {'pipeline img/s':>14} "
        f"{'data ms/step':>12} {'data share':>10}"
    )
    for spec in args.sizes.split(","):
        size, batch, steps = (int(v) for v in spec.split(":"))
        r = measure(args.arch, size, batch, steps, device, args.amp, channels_last)
        share = r["data_ms"] / r["pipeline_step_ms"]
        print(
            f"{size:>4}x{size:<4} {batch:>5} {steps:>5} {batch / r['synthetic_ms'] * 1e3:>15.1f} "
            f"{batch / r['pipeline_step_ms'] * 1e3:>14.1f} {r['data_ms']:>12.2f} {share:>10.1%}"
        )


if __name__ == "__main__":
    main()
