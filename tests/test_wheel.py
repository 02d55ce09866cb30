"""The package as a user installs it: a wheel built from this tree, installed by plain pip with constraints.txt into a
fresh virtual environment, run from outside the source tree.

The new environment gets the dependencies this test runs with as hard links (no copy, no download: unpacking PyTorch
again would take minutes), then `pip install --no-index -c constraints.txt WHEEL`: pip installs hwnas from the wheel
and must find every requirement it declares satisfied by the pinned versions, or it fails."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

import hwnas

ROOT = Path(__file__).resolve().parents[1]
CHECK = """
import json, sys
from importlib import metadata, resources
import hwnas, torch
hwnas.build_model("mobilenet_v2")
root = resources.files("hwnas")
print(json.dumps({
    "file": hwnas.__file__,
    "version": metadata.version("hwnas"),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "spaces": sorted(p.name for p in (root / "spaces" / "builtin").iterdir() if p.name.endswith(".yaml")),
    "zoo": sorted(p.name for p in (root / "zoo").iterdir() if p.name.endswith(".json")),
    "typed": (root / "py.typed").is_file(),
    "builtin": sorted(hwnas.builtin_spaces()),
}))
"""


def link_dependencies(env: Path) -> None:
    """Hard-link this interpreter's installed packages into `env`'s site-packages, all but hwnas (installed here in
    editable mode) and what the new environment already has (pip, setuptools)."""
    source = Path(sysconfig.get_paths()["purelib"])
    (target,) = (env / "lib").glob("python3*/site-packages")
    for entry in source.iterdir():
        name = entry.name.lower()
        if name.startswith(("hwnas", "__editable__", "pip")) or (target / entry.name).exists():
            continue  # the environment's own pip and setuptools stay
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, copy_function=os.link)
        else:
            os.link(entry, target / entry.name)


def run(*command: str | Path, cwd: Path) -> str:
    """`command` in `cwd`, with no PYTHONPATH (it would put another hwnas before the installed one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, f"{command}: {done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
def test_a_wheel_installs_with_constraints_and_runs_outside_the_tree(tmp_path):
    source = tmp_path / "source"  # a copy: building in the tree would leave build/ in it
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "hwnas", source / "hwnas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = ("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", source)
    run(sys.executable, "-m", "pip", *build, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("hwnas-*.whl"))
    assert wheel.name == f"hwnas-{hwnas.__version__}-py3-none-any.whl"

    venv.create(tmp_path / "env", with_pip=True)
    link_dependencies(tmp_path / "env")
    bin_dir = tmp_path / "env" / "bin"
    install = ("install", "-q", "--no-index", "-c", ROOT / "constraints.txt", wheel)
    run(bin_dir / "python", "-m", "pip", *install, cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert run(bin_dir / "hwnas", "--version", cwd=outside) == f"hwnas {hwnas.__version__}\n"
    found = json.loads(run(bin_dir / "python", "-c", CHECK, cwd=outside))
    assert Path(found["file"]).is_relative_to(tmp_path / "env")
    assert found["version"] == hwnas.__version__
    assert found["torch"].split("+")[0] == "2.13.0" and found["cuda"] is None  # the CPU build constraints.txt pins
    assert found["spaces"] == sorted(p.name for p in (ROOT / "hwnas" / "spaces" / "builtin").glob("*.yaml"))
    assert found["zoo"] == sorted(p.name for p in (ROOT / "hwnas" / "zoo").glob("*.json"))
    assert found["typed"] and {"fbnet", "darts", "mobilenet_v2"} <= set(found["builtin"])
