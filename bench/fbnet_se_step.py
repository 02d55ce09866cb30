"""FBNet-SE (face recognition) search step time and peak memory at 108x108, and the deformable op's cost.

    python bench/fbnet_se_step.py [--threads 2] [--batch 32] [--steps 3] [--modes gumbel_hard,gumbel]
                                   [--width 1.0] [--deform-only]

- Search steps: the `fbnet_se` supernet (16 searchable bottlenecks x 5-6 candidates, norm outside,
  ArcFace head on a 512-d embedding, 100 identities), a DNAS weight step and a θ step per mode:
  `gumbel` (soft: every candidate runs) and `gumbel_hard` (one sampled candidate runs). Each mode runs
  in its own process; peak memory is its peak RSS above the process after set-up. `--width` scales
  every width (the `width_mult` knob; 0.5 keeps every width divisible by the 32 groups) when the full
  space does not fit.
- Deformable 3x3 conv (pure PyTorch, bilinear sampling) against a plain 3x3 conv of the same shape,
  forward + backward, at the four stage resolutions of a 108x108 input (batch from --batch).
Medians over the timed steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from timing import median_time, rss_mb


def search_step(mode: str, threads: int, batch: int, steps: int, width: float) -> dict:
    import torch

    from hwnas.cost.build import build_table
    from hwnas.cost.cost_model import CostModel
    from hwnas.cost.hardware_loss import HardwareLoss
    from hwnas.data import Batch, Preprocess
    from hwnas.data.imageset import ImageSet, TensorSource
    from hwnas.spaces import load_space
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.dnas import DNASTrainer
    from hwnas.supernet import Supernet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    space = load_space("fbnet_se", num_classes=100, classifier="cosine", width_mult=width)
    table = build_table(space, measure=False, progress=False)
    costs = {m: CostModel.from_table(table, space, m) for m in ("macs", "params")}
    images = torch.randint(0, 256, (batch, 3, 108, 108), dtype=torch.uint8)
    labels = torch.randint(0, 100, (batch,))
    data = ImageSet(TensorSource(images), labels)
    pre = Preprocess((3, 108, 108), (0.5,), (0.25,))
    x = pre(Batch(images, labels, torch.arange(batch)), torch.device("cpu"))
    cfg = DnasConfig(
        space="fbnet_se", batch_size=batch, mode=mode, head="arcface", cost="macs", hw_loss="add", progress=False
    )
    trainer = DNASTrainer(
        Supernet(space), cfg, weight_set=data, theta_set=data, val_set=data, preprocess=pre,
        device=torch.device("cpu"), costs=costs, hardware_loss=HardwareLoss("add"),
    )  # fmt: skip
    trainer.net.train()
    base = rss_mb()
    w = median_time(lambda: trainer.train_step(x, labels), steps)
    theta = median_time(lambda: trainer.theta_step(x, labels), steps)
    return {"mode": mode, "w_s": w, "theta_s": theta, "peak_mb": rss_mb() - base}


def deform_vs_plain(threads: int, batch: int, steps: int) -> list[dict]:
    import torch
    import torch.nn.functional as F

    from hwnas.blocks.resnet import DeformConv2d

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = []
    for channels, side in ((64, 54), (128, 27), (256, 14), (512, 7)):
        x = torch.randn(batch, channels, side, side, requires_grad=True)
        deform = DeformConv2d(channels, channels, 3, 1, 1)
        weight = torch.randn(channels, channels, 3, 3, requires_grad=True)
        t_deform = median_time(lambda deform=deform, x=x: deform(x).sum().backward(), steps)
        t_plain = median_time(lambda weight=weight, x=x: F.conv2d(x, weight, padding=1).sum().backward(), steps)
        rows.append({"shape": f"{channels}x{side}x{side}", "deform_s": t_deform, "plain_s": t_plain})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--modes", default="gumbel_hard,gumbel")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--deform-only", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(search_step(args.one, args.threads, args.batch, args.steps, args.width)))
        return
    import torch

    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), batch {args.batch}, 108x108")
    if not args.deform_only:
        print(f"fbnet_se supernet (width x{args.width:g}), ArcFace head, 100 identities; DNAS steps")
        for mode in args.modes.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--one", mode, "--threads", str(args.threads), "--batch",
                 str(args.batch), "--steps", str(args.steps), "--width", str(args.width)],
                capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode != 0:
                why = (out.stderr.strip().splitlines() or ["killed (-9: the kernel's out-of-memory kill)"])[-1]
                print(f"{mode:12} failed (exit {out.returncode}): {why}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{mode:12} w-step {r['w_s']:8.2f} s  θ-step {r['theta_s']:8.2f} s  peak {r['peak_mb']:8.0f} MB")
    print("deformable 3x3 vs plain 3x3 conv, forward + backward")
    for r in deform_vs_plain(args.threads, args.batch, args.steps):
        ratio = r["deform_s"] / r["plain_s"]
        print(f"  {r['shape']:10} deform {r['deform_s']:7.3f} s  plain {r['plain_s']:7.3f} s  {ratio:5.1f}x")


if __name__ == "__main__":
    main()
