"""Hardware-aware DARTS: does raising λ (the weight of the expected latency in α's loss) give faster cells?

    python bench/darts_hardware.py [--lambdas 0,0.1,1,10] [--epochs 6]

Searches `darts` on the bundled digits (1x16x16, 10 classes; search network C8, 5 cells, 4 nodes) with
`--cost latency --hc-weight λ` for each λ, the cost table measured for the evaluation network (C16,
8 cells, 1 thread), then re-measures every derived evaluation network side by side in this process
(median of `torch.utils.benchmark` over 2 s each, 1 thread) and prints the table's prediction beside it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lambdas", default="0,0.1,1,10")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from hwnas.arch import Architecture
    from hwnas.cost import measure_latency, profile_arch
    from hwnas.model import build_model
    from hwnas.strategies.config import DartsConfig
    from hwnas.strategies.run import search as search_cells

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for weight in (float(v) for v in args.lambdas.split(",")):
            cfg = DartsConfig(
                data="digits",
                input="1x16x16",
                epochs=args.epochs,
                batch_size=64,
                init_channels=8,
                layers=5,
                eval_init_channels=16,
                eval_layers=8,
                arch_lr=3e-3,
                cost="latency",
                hc_weight=weight,
                seed=args.seed,
                progress=False,
                device="cpu",
                workers=0,
                run_dir=str(Path(tmp) / f"lambda_{weight:g}"),
            )
            outcome = search_cells(cfg)
            rows.append((weight, outcome))
        torch.set_num_threads(1)
        print(f"\ndigits 1x16x16, {args.epochs} epochs; evaluation network C16, 8 cells; 1 CPU thread")
        print("λ       skip  params    MACs (M)  predicted (ms)  measured (ms)  supernet val top-1")
        for weight, outcome in rows:
            arch = Architecture.load(outcome.arch_path)
            model = build_model(arch)
            measured = measure_latency(model, arch.spec.input_size, threads=1, min_run_time=2.0).median_ms
            s = outcome.summary
            print(
                f"{weight:<7g} {s['skip_normal']:4d}  {profile_arch(arch).params:7,d}  {s['macs'] / 1e6:8.2f}  "
                f"{s['predicted_cost']:14.3f}  {measured:13.3f}  {s['val_top1_supernet']:.1f}%"
            )
            print(f"        {arch.genotype.describe()}")


if __name__ == "__main__":
    main()
