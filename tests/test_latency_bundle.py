"""Latency bundles (FBNet priced a phone hwnas does not run on): a space's table entries as ONNX models, timed by a
stand-alone runner that needs neither hwnas nor torch, imported back as a cost table that prices a search."""

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost.build import build_table
from hwnas.cost.bundle import RUNNER, import_results, write_bundle
from hwnas.cost.cell_cost import CellCostModel
from hwnas.cost.table import CostTable, space_units
from hwnas.cost.units import head_key, layer_keys, stem_key
from hwnas.spaces import load_space
from hwnas.spaces.genotype import random_genotype
from tests.helpers import TINY_SPACE

# runs run_bundle.py as its own program would, with hwnas and torch made unimportable, then names what it imported
WITHOUT_HWNAS = """
import runpy, sys

class Blocked:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in ("hwnas", "torch"):
            raise ImportError("the runner imported " + name)

sys.meta_path.insert(0, Blocked)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("imported:", sorted(m for m in sys.modules if m.partition(".")[0] in ("hwnas", "torch")))
"""


def run_bundle(directory: Path) -> subprocess.CompletedProcess:
    """The bundle's own run_bundle.py, in an isolated Python (-I: no PYTHONPATH, no user site, not the repo's cwd)."""
    command = [sys.executable, "-I", "-c", WITHOUT_HWNAS, str(directory / "run_bundle.py"), str(directory)]
    proc = subprocess.run(
        [*command, "--runs", "3", "--warmup", "1"], cwd=directory, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def tiny_timed(tmp_path_factory) -> tuple[Path, Path, str]:
    """(space file, bundle folder, runner's stdout): helpers.TINY_SPACE bundled and timed by the runner."""
    root = tmp_path_factory.mktemp("bundle")
    space_file = root / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    write_bundle(load_space(str(space_file)), root / "tiny-bundle")
    return space_file, root / "tiny-bundle", run_bundle(root / "tiny-bundle").stdout


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_bundle_holds_each_entry_once_with_its_counts_and_the_runner(tiny_timed):
    space_file, bundle, _ = tiny_timed
    space = load_space(str(space_file))
    manifest = json.loads((bundle / "manifest.json").read_text())
    units = space_units(space)
    assert [e["key"] for e in manifest["entries"]] == list(units)
    assert len(units) < 2 + sum(len(layer.candidates) for layer in space.layers)  # layers 2 and 3 share their keys
    assert sorted(p.name for p in (bundle / "models").iterdir()) == sorted(
        Path(e["file"]).name for e in manifest["entries"]
    )
    counted = build_table(space, measure=False, progress=False).entries
    for entry in manifest["entries"]:
        assert entry["input_shape"] == [1, *units[entry["key"]].input_shape]
        assert (entry["macs"], entry["params"]) == (counted[entry["key"]]["macs"], counted[entry["key"]]["params"])
    assert manifest["key"]["space_fingerprint"] == space.fingerprint() and manifest["key"]["batch"] == 1
    assert (bundle / "run_bundle.py").read_text() == RUNNER.read_text()


def test_the_runner_needs_neither_hwnas_nor_torch_and_its_results_import_as_a_table(tiny_timed, tmp_path, capsys):
    space_file, bundle, stdout = tiny_timed
    assert "imported: []" in stdout
    results = json.loads((bundle / "results.json").read_text())
    assert results["device"]["threads"] == 1 and "CPUExecutionProvider" in results["device"]["providers"]
    assert all(e["latency_ms"]["count"] == 3 for e in results["entries"].values())
    assert main(["latency", "import", str(bundle / "results.json"), "-o", str(tmp_path / "device.json")]) == 0
    assert "entries of tiny timed on" in capsys.readouterr().out
    table = CostTable.load(tmp_path / "device.json")
    space = load_space(str(space_file))
    table.check_covers(space, "imported table")
    assert (
        table.meta["device"] == "bundle:CPUExecutionProvider"
        and results["device"]["processor"] in table.meta["device_name"]
    )
    median = {key: e["latency_ms"]["median"] for key, e in results["entries"].items()}
    units = list(space_units(space))
    choices = ["ir_k5_e3", "skip", "ir_k3_e3"]
    rows = zip(layer_keys(space), space.layers, choices, strict=True)
    keys = [stem_key(space), *(row[layer.candidates.index(op)] for row, layer, op in rows), head_key(space)]
    assert set(keys) <= set(units)
    assert table.predict(space, choices) == pytest.approx(sum(median[k] for k in keys), rel=1e-12)
    assert main(["latency", str(space_file), "--table", str(tmp_path / "device.json")]) == 0
    assert "bundle:CPUExecutionProvider" in capsys.readouterr().out


@pytest.mark.slow
def test_a_search_is_priced_by_the_imported_table(tiny_timed, tmp_path, capsys):
    space_file, bundle, _ = tiny_timed
    table = import_results(bundle / "results.json")
    path = table.save(tmp_path / "device.json")
    run = tmp_path / "run"
    args = [
        "search", str(space_file), "--data", "synthetic", "--input", "1x8x8", "--epochs", "1",
        "--weight-warmup-epochs", "0", "--batch-size", "128", "--train-portion", "0.5", "--no-progress",
        "--latency-table", str(path), "--cost", "latency", "--run-dir", str(run),
    ]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    arch = Architecture.load(run / "arch.json")
    space = load_space(str(space_file))
    assert summary["predicted_latency_ms"] == pytest.approx(table.predict(space, list(arch.choices)), rel=1e-9)


def test_a_cell_space_bundle_times_and_imports(tmp_path, capsys):
    bundle = tmp_path / "darts-bundle"
    flags = ["--input", "3x8x8", "--init-channels", "4", "--layers", "3"]
    assert main(["latency", "bundle", "darts", *flags, "-o", str(bundle)]) == 0
    assert f"python3 {bundle}/run_bundle.py" in capsys.readouterr().out
    run_bundle(bundle)
    table = import_results(bundle / "results.json")
    space = load_space("darts", input_size=[3, 8, 8], init_channels=4, layers=3)
    table.check_covers(space, "imported table")
    results = json.loads((bundle / "results.json").read_text())["entries"]
    assert {k: e["latency_ms"] for k, e in table.entries.items()} == {k: e["latency_ms"] for k, e in results.items()}
    cost = CellCostModel.from_table(table, space, "latency").of(
        random_genotype(space.ops, space.nodes, random.Random(0))
    )
    assert math.isfinite(cost) and cost > 0


def edit_results(results: dict, manifest: dict, how: str) -> None:
    key = manifest["entries"][1]["key"]
    if how == "fingerprint":
        results["fingerprint"] = "0" * 24
    elif how == "missing":
        del results["entries"][key]
    elif how == "nan":
        results["entries"][key]["latency_ms"]["median"] = float("nan")
    elif how == "negative":
        results["entries"][key]["latency_ms"]["mean"] = -0.5
    elif how == "manifest":
        manifest["entries"][0]["macs"] += 1


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("fingerprint", "expected the results of this bundle"),
        ("missing", "1 of the bundle's"),
        ("nan", "latency_ms.median is nan; expected a finite time > 0 ms"),
        ("negative", "latency_ms.mean is -0.5; expected a finite time > 0 ms"),
        ("manifest", "not as `hwnas latency bundle` wrote it"),
    ],
)
def test_bad_results_are_refused_with_one_line(tiny_timed, tmp_path, capsys, how, says):
    bundle = shutil.copytree(tiny_timed[1], tmp_path / "bundle")
    results = json.loads((bundle / "results.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit_results(results, manifest, how)
    (bundle / "results.json").write_text(json.dumps(results))  # json writes NaN as the bare word
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert main(["latency", "import", str(bundle / "results.json"), "-o", str(tmp_path / "t.json")]) == 2
    assert says in one_line_error(capsys)
    assert not (tmp_path / "t.json").exists()


def test_validate_refuses_a_bundle_table_and_bundle_needs_an_empty_folder(tiny_timed, tmp_path, capsys):
    space_file, bundle, _ = tiny_timed
    path = import_results(bundle / "results.json").save(tmp_path / "device.json")
    assert main(["latency", "validate", str(space_file), "--table", str(path), "--samples", "2"]) == 2
    assert "timed on another device" in one_line_error(capsys)
    assert main(["latency", "bundle", str(space_file), "-o", str(bundle)]) == 2
    assert "expected a new or empty folder" in one_line_error(capsys)
    assert main(["latency", "import", str(bundle / "results.json")]) == 2
    assert "expected -o TABLE.json" in one_line_error(capsys)
