"""The README's Python section runs as written: its blocks, in order, in a fresh directory."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_section_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_python_section_has_the_examples_the_readme_promises():
    code = "\n".join(python_section_blocks())
    for call in ("hwnas.build_model(", "hwnas.register_op(", "hwnas.search(", "hwnas.train(", "TensorDataset("):
        assert call in code


@pytest.mark.slow
def test_readme_python_examples_run_as_written_in_a_fresh_directory(tmp_path):
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(python_section_blocks()))
    env = {**os.environ, "HWNAS_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert (tmp_path / "runs" / "my_train" / "model.pt").is_file()
    assert "dw5_relu6" in proc.stdout  # the registered op is a candidate of the space
    top1 = float(re.search(r"([\d.]+)% top-1", proc.stdout).group(1))
    assert top1 > 50  # 15 epochs on the digits; chance is 10%
    for search in ("my_search", "my_data_search"):  # real searches: θ trained, nothing the user must act on
        assert json.loads((tmp_path / "runs" / search / "result.json").read_text())["theta_health"]["healthy"]
    assert "HwnasWarning" not in proc.stderr, proc.stderr[-3000:]
    assert "refused: --weight-warmup-epochs 2 with --epochs 1: the architecture parameters would never train" in (
        proc.stdout
    )  # refused before any work
    assert not (tmp_path / "runs" / "too_short").exists()
