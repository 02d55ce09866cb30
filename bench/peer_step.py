"""Search steps with hwnas's default options against the peers' way of running them, interleaved, in one run.

    python bench/peer_step.py [--batches 64 256] [--darts-batches 16 64] [--rounds 2] [--steps 6] [--threads 2]

The peers are the PyTorch FBNet reproduction (soft Gumbel DNAS on its CIFAR supernet, 22 x 9) and CNAS
(DARTS's search network). Neither can be installed here (no package, no network), so each is run as its
step is written, in plain PyTorch, measured in the same run as hwnas:
- `fbnet-peer`: the FBNet reproduction's mixed operation: the layer's candidates built once, each run on
  the layer's input and summed, `sum(m * op(x) for m, op in zip(gumbel_softmax(theta, tau), ops))`,
  NCHW, SGD on the cross-entropy times its latency term (`sum(m * lat)`); its candidates are written
  here in plain PyTorch (FBNet's block: grouped 1x1 and shuffle, depthwise KxK, grouped 1x1; a 1x1
  projection for `skip` where shapes differ) at `fbnet_cifar`'s widths and strides, with its stem and
  head, so both sides compute the same network. Its θ are parameters of the model, as there, so the
  backward pass computes their gradient too.
- `cnas-peer`: DARTS's MixedOp as CNAS keeps it, `sum(w * op(x) for w, op in zip(weights, ops))` over every
  edge's ops, NCHW, activations kept: hwnas's cell supernet with every default switched back to that
  (`--no-channels-last`, `--no-recompute`, fusion off), the weight step of the `darts` search network.
- `fbnet-hwnas`, `darts-hwnas`: `hwnas search`'s weight step with its default options (channels_last and
  recompute decided as `hwnas search` decides them).
Each configuration runs in its own process, so whole-process peak resident memory is its own; the
configurations alternate within each round, and every ratio is taken within its round. Times are
medians over `--steps` steps after 2 warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from timing import median_time, rss_mb

TARGETS = {"fbnet": (2.0, 0.8), "darts": (1.8, None)}  # speed-up at least, peak memory at most (x the peer's)


def data(batch: int):
    import torch

    from hwnas.data import Batch, ImageSet, Preprocess
    from hwnas.data.imageset import TensorSource

    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch * 2, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch * 2,))
    pre = Preprocess((3, 32, 32), (0.5,), (0.25,))
    x = pre(Batch(images[:batch], labels[:batch], torch.arange(batch)), torch.device("cpu"))
    return ImageSet(TensorSource(images), labels), pre, x, labels[:batch]


def fbnet_peer(batch: int):
    """The FBNet reproduction's w-step on fbnet_cifar's layers, in plain PyTorch (its own blocks)."""
    import re

    import torch
    import torch.nn.functional as F
    from torch import nn

    from hwnas.nets import ClassifierHead, build_stem
    from hwnas.spaces import load_space

    space = load_space("fbnet_cifar")

    def conv_bn(c_in: int, c_out: int, kernel: int, stride: int, groups: int, relu: bool) -> list[nn.Module]:
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        return [*layers, nn.ReLU(inplace=True)] if relu else layers

    class Shuffle(nn.Module):
        def __init__(self, groups: int) -> None:
            super().__init__()
            self.groups = groups

        def forward(self, x):
            n, c, h, w = x.shape
            return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    class IRF(nn.Module):
        """FBNet's block: 1x1 (grouped, then shuffled), KxK depthwise, 1x1 (grouped); residual where shapes match."""

        def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int, groups: int) -> None:
            super().__init__()
            mid = c_in * expansion
            body = conv_bn(c_in, mid, 1, 1, groups, True) + ([Shuffle(groups)] if groups > 1 else [])
            body += conv_bn(mid, mid, kernel, stride, mid, True) + conv_bn(mid, c_out, 1, 1, groups, False)
            self.body = nn.Sequential(*body)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    def candidate(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
        if op == "skip":
            same = c_in == c_out and stride == 1
            return nn.Identity() if same else nn.Sequential(*conv_bn(c_in, c_out, 1, stride, 1, True))
        k, e, g = re.fullmatch(r"ir_k(\d)_e(\d)(?:_g(\d))?", op).groups()
        return IRF(c_in, c_out, stride, int(k), int(e), int(g or 1))

    class MixedOperation(nn.Module):
        def __init__(self, layer) -> None:
            super().__init__()
            self.ops = nn.ModuleList(candidate(op, layer.c_in, layer.c_out, layer.stride) for op in layer.candidates)
            self.thetas = nn.Parameter(torch.full((len(self.ops),), 1.0 / len(self.ops)))
            self.latency = [1.0 + i for i in range(len(self.ops))]

        def forward(self, x, temperature, latency):
            m = F.gumbel_softmax(self.thetas, temperature)
            out = sum(w * op(x) for w, op in zip(m, self.ops, strict=True))
            return out, latency + sum(w * lat for w, lat in zip(m, self.latency, strict=True))

    class Supernet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.head = build_stem(space), ClassifierHead(space)
            self.layers = nn.ModuleList(MixedOperation(layer) for layer in space.layers)

        def forward(self, x, temperature):
            x, latency = self.stem(x), torch.zeros(())
            for layer in self.layers:
                x, latency = layer(x, temperature, latency)
            return self.head(x), latency

    model = Supernet()
    weights = [p for name, p in model.named_parameters() if not name.endswith("thetas")]
    optimizer = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=1e-4)
    _, _, x, y = data(batch)

    def step() -> None:
        out, latency = model(x, 5.0)
        loss = F.cross_entropy(out, y) * 0.2 * torch.log(latency) ** 0.6
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def fbnet_hwnas(batch: int):
    """`hwnas search fbnet_cifar`'s weight step with its default options."""
    import torch

    from hwnas.cost.build import build_table
    from hwnas.cost.cost_model import UNITS, CostModel
    from hwnas.cost.hardware_loss import HardwareLoss
    from hwnas.spaces import load_space
    from hwnas.strategies.config import DnasConfig
    from hwnas.strategies.dnas import DNASTrainer
    from hwnas.supernet import Supernet, recompute
    from hwnas.supernet.memory import recompute_default

    space = load_space("fbnet_cifar")
    table = build_table(space, measure=False, progress=False)
    costs = {m: CostModel.from_table(table, space, m) for m in UNITS if m != "latency"}
    costs["latency"] = costs["macs"]
    dataset, pre, x, y = data(batch)
    cfg = DnasConfig(batch_size=batch, progress=False, train_portion=0.5)
    trainer = DNASTrainer(
        Supernet(space), cfg, weight_set=dataset, theta_set=dataset, val_set=dataset, preprocess=pre,
        device=torch.device("cpu"), costs=costs, hardware_loss=HardwareLoss("mul").fitted(costs[cfg.cost]),
    )  # fmt: skip
    on = recompute_default(cfg.recompute, trainer, lambda t: trainer.model(t, trainer.path(grad=False)))
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        trainer.step += 1
        with recompute(on):
            trainer.train_step(x, y)

    return step


def darts(batch: int, peer: bool):
    """The `darts` search network's weight step: hwnas's defaults, or every default switched to CNAS's way."""
    import torch

    from hwnas.spaces import load_space
    from hwnas.strategies.config import DartsConfig
    from hwnas.strategies.darts import DartsTrainer
    from hwnas.supernet import recompute
    from hwnas.supernet.cell_supernet import CellSupernet
    from hwnas.supernet.memory import recompute_default

    space = load_space("darts")
    dataset, pre, x, y = data(batch)
    cfg = DartsConfig(
        batch_size=batch, progress=False, **({"channels_last": False, "recompute": False} if peer else {})
    )
    trainer = DartsTrainer(
        CellSupernet(space), cfg, weight_set=dataset, arch_set=dataset, val_set=dataset, preprocess=pre,
        device=torch.device("cpu"),
    )  # fmt: skip
    on = recompute_default(cfg.recompute, trainer, lambda t: trainer.model(t, trainer.arch.weights()))
    if trainer.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    trainer.net.train()

    def step() -> None:
        with recompute(on):
            trainer.train_step(x, y)

    return step


def one(kind: str, batch: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    step = {
        "fbnet-peer": lambda: fbnet_peer(batch),
        "fbnet-hwnas": lambda: fbnet_hwnas(batch),
        "cnas-peer": lambda: darts(batch, peer=True),
        "darts-hwnas": lambda: darts(batch, peer=False),
    }[kind]()
    return {"step_s": median_time(step, steps), "peak_mb": rss_mb()}


def measure(kind: str, batch: int, args: argparse.Namespace) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", kind, "--batch", str(batch), "--steps", str(args.steps),
         "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="*", default=[64, 256], help="DNAS batch sizes")
    parser.add_argument("--darts-batches", type=int, nargs="*", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.batch, args.steps, args.threads)))
        return
    pairs = [("fbnet", "fbnet-peer", "fbnet-hwnas", b) for b in args.batches]
    pairs += [("darts", "cnas-peer", "darts-hwnas", b) for b in args.darts_batches]
    print(f"CPU, {args.threads} threads; medians of {args.steps} steps; whole-process peak resident memory")
    print(f"{'round':>5} {'step':6} {'batch':>5} {'peer s':>8} {'hwnas s':>8} {'speed-up':>8} {'peer MB':>8} "
          f"{'hwnas MB':>8} {'memory':>7}")  # fmt: skip
    verdicts: dict[tuple[str, int], list[bool]] = {}
    for r in range(1, args.rounds + 1):
        for name, peer_kind, hwnas_kind, batch in pairs:
            # alternate which side runs first from round to round
            order = [peer_kind, hwnas_kind] if r % 2 else [hwnas_kind, peer_kind]
            got = {kind: measure(kind, batch, args) for kind in order}
            peer, mine = got[peer_kind], got[hwnas_kind]
            speedup, memory = peer["step_s"] / mine["step_s"], mine["peak_mb"] / peer["peak_mb"]
            speed_target, memory_target = TARGETS[name]
            ok = speedup >= speed_target and (memory_target is None or memory <= memory_target)
            verdicts.setdefault((name, batch), []).append(ok)
            print(
                f"{r:>5} {name:6} {batch:>5} {peer['step_s']:>8.3f} {mine['step_s']:>8.3f} {speedup:>7.2f}x "
                f"{peer['peak_mb']:>8.0f} {mine['peak_mb']:>8.0f} {memory:>6.2f}x",
                flush=True,
            )
    for (name, batch), oks in verdicts.items():
        speed_target, memory_target = TARGETS[name]
        memory = f" and peak memory <= {memory_target}x" if memory_target else ""
        print(
            f"{name} batch {batch}: {sum(oks)} of {len(oks)} rounds meet speed-up >= {speed_target}x{memory} "
            f"against the peer's way"
        )


if __name__ == "__main__":
    main()
