"""DARTS search step time and peak memory: the search network of `darts` (C16, 8 cells, 4 nodes, 8 ops),
32x32 inputs, batch 64, on the CPU.

    python bench/darts_step.py [--threads 2] [--batch 64] [--steps 5] [--kinds first,second,pc4,pc4_second]

One search step is what `hwnas search darts` does per batch: an α step on a batch of α's split
(first order, or `--sec-approx`: one unrolled weight step and two more passes for the
Hessian-vector product), then a weight step. Kinds:
- `first`, `second`: DARTS, first- and second-order α gradient;
- `pc4`, `pc4_second`: the same with partial channel connections K=4 and edge normalisation (PC-DARTS);
- `weights`: the weight step alone (no α step), the floor of any search step;
- a kind followed by techniques, e.g. `weights+recompute`, `weights+channels_last+recompute`: the same with
  every mixed edge recomputed in the backward pass (`+recompute`: `--recompute`, hwnas.supernet.recomputation)
  and/or channels_last model and inputs (`+channels_last`: `--channels-last`), printed as a ratio to the
  kind without them.
Each kind runs in its own process, so its peak resident memory (above the process's memory after
importing torch and building the data) is its own. Times are medians over the timed steps after 2
warm-up steps. `--device cuda` measures on a GPU (peak memory from torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from timing import median_time, rss_mb


def one(kind: str, threads: int, batch: int, steps: int, device: str) -> dict:
    import torch

    from hwnas.data import Batch, Preprocess
    from hwnas.data.imageset import ImageSet, TensorSource
    from hwnas.spaces import load_space
    from hwnas.strategies.config import DartsConfig
    from hwnas.strategies.darts import DartsTrainer
    from hwnas.supernet import recompute
    from hwnas.supernet.cell_supernet import CellSupernet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    space = load_space("darts")
    images = torch.randint(0, 256, (batch * 2, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch * 2,))
    data = ImageSet(TensorSource(images), labels)
    pre = Preprocess((3, 32, 32), (0.5,), (0.25,))

    def prepared(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        sl = slice(i * batch, (i + 1) * batch)
        return pre(Batch(images[sl], labels[sl], torch.arange(batch)), dev), labels[sl].to(dev)

    base_kind, *techniques = kind.split("+")
    partial = 4 if base_kind.startswith("pc4") else 1
    cfg = DartsConfig(
        batch_size=batch,
        sec_approx=base_kind.endswith("second"),
        partial_channels=partial,
        progress=False,
        channels_last="channels_last" in techniques,
    )
    trainer = DartsTrainer(
        CellSupernet(space, partial), cfg, weight_set=data, arch_set=data, val_set=data, preprocess=pre, device=dev
    )
    trainer.net.train()
    (x, y), (xa, ya) = prepared(0), prepared(1)
    if cfg.channels_last:
        x, xa = (t.contiguous(memory_format=torch.channels_last) for t in (x, xa))
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base = rss_mb()

    def step() -> None:
        if base_kind != "weights":
            trainer.arch_step(xa, ya, x, y)
        trainer.train_step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    with recompute("recompute" in techniques):
        step_s = median_time(step, steps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else rss_mb() - base
    return {"kind": kind, "step_s": step_s, "peak_mb": peak, "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--kinds", default="weights,first,second,pc4,pc4_second")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.threads, args.batch, args.steps, args.device)))
        return
    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"{args.threads} CPU thread(s)"
    print(f"darts search network C16, 8 cells, 4 nodes, 8 ops; 32x32, batch {args.batch}; torch {torch.__version__}")
    print(f"device: {where}")
    results = {}
    for kind in args.kinds.split(","):
        out = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--threads", str(args.threads), "--batch", str(args.batch),
             "--steps", str(args.steps), "--device", args.device],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[kind]
        print(f"{kind:18} {r['step_s']:8.3f} s/step  peak {r['peak_mb']:8.0f} MB  (median of {r['steps']} steps)")
    if "first" in results and "second" in results:
        print(f"second / first order step time: {results['second']['step_s'] / results['first']['step_s']:.2f}x")
    for kind, r in results.items():
        base_kind = kind.split("+")[0]
        if kind != base_kind and base_kind in results:
            ref = results[base_kind]
            print(
                f"{kind} / {base_kind}: step {r['step_s'] / ref['step_s']:.2f}x, "
                f"peak memory {r['peak_mb'] / ref['peak_mb']:.2f}x"
            )
    if "first" in results and "pc4" in results:
        r = results["pc4"]["peak_mb"] / results["first"]["peak_mb"]
        print(
            f"partial channels K=4 / full: step {results['pc4']['step_s'] / results['first']['step_s']:.2f}x, "
            f"peak memory {r:.2f}x"
        )


if __name__ == "__main__":
    main()
