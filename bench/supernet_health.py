"""Does `hwnas supernet train SPACE` with its default options give a supernet the search finds healthy, on every
bundled dataset?

    python bench/supernet_health.py            # digits (fbnet_small) and fonts (the fonts16 ground truth's space)

Each case runs the two commands a user would, through the CLI: `hwnas supernet train SPACE [--data D]` with no
other option (but `--threads 1 --no-progress`), then `hwnas search SPACE --strategy random --supernet RUN
--random-iteration 8`, whose health check scores 8 random paths (BatchNorm re-estimated) on the validation split
against chance. It prints, per case, the epochs the defaults chose, the training time, the check's verdict and
the shipped pick's top-1 on the data's held-out test pool. Run directories go to a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {  # bundled dataset: (space, extra options of both commands)
    "digits": ("fbnet_small", []),
    "fonts": (str(HERE / "groundtruth" / "fonts16" / "space.yaml"), ["--data", "fonts"]),
}


def hwnas(*args: str) -> str:
    """Run the CLI; what it said (stdout and stderr)."""
    done = subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hwnas-health-") as tmp:
        for data, (space, options) in CASES.items():
            supernet, search = Path(tmp) / f"{data}-supernet", Path(tmp) / f"{data}-search"
            start = time.perf_counter()
            said = hwnas(
                "supernet", "train", space, *options, "--threads", "1", "--no-progress", "--run-dir", str(supernet)
            )
            seconds = time.perf_counter() - start
            epochs = next((line for line in said.splitlines() if line.startswith("supernet training:")), "")
            hwnas(
                "search", space, *options, "--strategy", "random", "--random-iteration", "8", "--supernet",
                str(supernet), "--threads", "1", "--no-progress", "--run-dir", str(search),
            )  # fmt: skip
            result = json.loads((search / "result.json").read_text())
            health, shipped = result["supernet_health"], result["shipped"][-1]  # one limit: one network
            print(f"{data}: {epochs or 'supernet training: epochs as given'} ({seconds:.0f} s, 1 thread)")
            print(f"  {health['message']}")
            print(
                f"  the pick ships at {shipped['test_top1']:.2f}% test top-1 on {shipped['test_images']:,} held-out "
                f"images: {' '.join(result['choices'])}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
