"""DNAS step time and peak memory on fbnet_cifar (22 layers x 9 candidates, 32x32, batch 64, CPU).

    python bench/dnas_step.py [--threads 2] [--batch 64] [--steps 10] [--reference]

Each configuration runs in its own process so its peak resident memory (above the process's
memory after importing torch and building the data) is its own:
- `gumbel`: w-step and θ-step of the soft Gumbel supernet (every candidate runs);
- `gumbel_hard`: the same with straight-through hard sampling (one path runs);
- `standalone`: training steps of the networks (built with `build_model`) of the very paths the
  `gumbel_hard` w-steps sample, one network per step;
- `candidates`: forward+backward of every candidate alone at its layer's input, summed (what a
  soft supernet step does at least, without the mixing).
`gumbel` is the soft step as hwnas runs it by default: every candidate on its own, its activations kept
for the backward pass (the reference). With `--reference` the soft step runs with each technique of
issue 16 and its ratio to the reference is printed: `gumbel+fused` (hwnas.supernet.fusion),
`gumbel+recompute` (hwnas.supernet.recomputation, `--recompute`), both, and `gumbel+channels_last`.
Times are medians over the timed steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

REFERENCE_KINDS = (
    "gumbel",
    "gumbel+fused",
    "gumbel+recompute",
    "gumbel+fused+recompute",
    "gumbel+channels_last",
    "gumbel+channels_last+recompute",
    "gumbel+channels_last+fused",
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(kind: str, threads: int, batch: int, steps: int) -> dict:
    import torch

    from hwnas.arch import Architecture
    from hwnas.cost.build import build_table
    from hwnas.cost.cost_model import UNITS, CostModel
    from hwnas.cost.hardware_loss import HardwareLoss
    from hwnas.cost.interleaved import QUICK_ROUNDS
    from hwnas.data import Batch, Preprocess
    from hwnas.engine.config import TrainConfig
    from hwnas.engine.trainer import Trainer
    from hwnas.model import build_model
    from hwnas.spaces import load_space
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.dnas import DNASTrainer
    from hwnas.supernet import Supernet, fusion, recompute

    torch.set_num_threads(threads)
    space = load_space("fbnet_cifar")
    images = torch.randint(0, 256, (batch * 4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch * 4,))
    from hwnas.data.imageset import ImageSet, TensorSource

    data = ImageSet(TensorSource(images), labels)
    pre = Preprocess((3, 32, 32), (0.5,), (0.25,))
    x = pre(Batch(images[:batch], labels[:batch], torch.arange(batch)), torch.device("cpu"))
    y = labels[:batch]
    base = rss_mb()

    def timed(step, n) -> float:
        times = []
        for i in range(n + 2):
            start = time.perf_counter()
            step()
            if i >= 2:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    if kind == "candidates":
        total = 0.0
        for layer in space.layers:
            for op in layer.candidates:
                from hwnas.blocks import build_block

                block = build_block(op, layer.c_in, layer.c_out, layer.stride, space.block_config)
                inp = torch.randn(batch, *layer.input_shape, requires_grad=True)
                total += timed(lambda block=block, inp=inp: block(inp).sum().backward(), 3)
        return {"kind": kind, "step_s": total, "peak_mb": rss_mb() - base}
    cfg = TrainConfig(batch_size=batch, progress=False)
    if kind == "standalone":  # the very paths the gumbel_hard w-steps sample (same seeds, θ still uniform)
        from hwnas.supernet import Supernet
        from hwnas.supernet.mixing import ArchParams

        theta = ArchParams(Supernet(space))
        results = []
        for step in range(1, steps + 3):
            picks = [c[0] for c in theta.choices("gumbel_hard", 5.0, step)]
            arch = Architecture.from_space(space, [la.candidates[i] for la, i in zip(space.layers, picks, strict=True)])
            trainer = Trainer(
                build_model(arch), cfg, train_set=data, val_set=data, preprocess=pre, device=torch.device("cpu")
            )
            results.append(timed(lambda trainer=trainer: trainer.train_step(x, y), 3))
        return {"kind": kind, "step_s": statistics.median(results[2:]), "peak_mb": rss_mb() - base}
    table = build_table(space, policy=QUICK_ROUNDS, progress=False)
    costs = {m: CostModel.from_table(table, space, m) for m in UNITS}
    mode, *techniques = kind.split("+")
    scfg = DnasConfig(
        batch_size=batch,
        mode=mode,
        progress=False,
        train_portion=0.5,
        seed=0,
        channels_last="channels_last" in techniques,
    )
    trainer = DNASTrainer(
        Supernet(space),
        scfg,
        weight_set=data,
        theta_set=data,
        val_set=data,
        preprocess=pre,
        device=torch.device("cpu"),
        costs=costs,
        hardware_loss=HardwareLoss("mul").fitted(costs[scfg.cost]),
    )

    def w_step():
        trainer.step += 1
        trainer.train_step(x, y)

    def theta_step():
        trainer.step += 1
        trainer.theta_step(x, y)

    if scfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with fusion("fused" in techniques), recompute("recompute" in techniques):
        w = timed(w_step, steps)
        theta = timed(theta_step, steps)
    return {"kind": kind, "step_s": w, "theta_step_s": theta, "peak_mb": rss_mb() - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument(
        "--reference", action="store_true", help="the soft step with each technique, against the reference"
    )
    parser.add_argument("--kinds", help="with --reference: these configurations (comma-separated) instead of all")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.threads, args.batch, args.steps)))
        return
    rows = {}
    kinds = (
        (args.kinds.split(",") if args.kinds else REFERENCE_KINDS)
        if args.reference
        else ("standalone", "gumbel_hard", "gumbel", "candidates")
    )
    for kind in kinds:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                kind,
                "--threads",
                str(args.threads),
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"fbnet_cifar, batch {args.batch}, 32x32, CPU, {args.threads} threads; medians of {args.steps} steps")
    print(f"{'configuration':24} {'w-step s':>9} {'θ-step s':>9} {'peak MB':>8}")
    for kind, r in rows.items():
        theta = f"{r['theta_step_s']:.3f}" if "theta_step_s" in r else "-"
        print(f"{kind:24} {r['step_s']:>9.3f} {theta:>9} {r['peak_mb']:>8.0f}")
    if args.reference:
        r = rows["gumbel"]
        for kind, g in rows.items():
            if kind != "gumbel":
                print(
                    f"{kind} / reference: w-step {g['step_s'] / r['step_s']:.2f}x, θ-step "
                    f"{g['theta_step_s'] / r['theta_step_s']:.2f}x, peak memory {g['peak_mb'] / r['peak_mb']:.2f}x"
                )
        return
    s, h, g, c = (rows[k] for k in ("standalone", "gumbel_hard", "gumbel", "candidates"))
    print(
        f"gumbel_hard / standalone: step {h['step_s'] / s['step_s']:.2f}x (target <= 1.2), "
        f"peak memory {h['peak_mb'] / s['peak_mb']:.2f}x (target <= 1.5)"
    )
    print(f"gumbel / all candidates alone: step {g['step_s'] / c['step_s']:.2f}x (target <= 1.2)")


if __name__ == "__main__":
    main()
