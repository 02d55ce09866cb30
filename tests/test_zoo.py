import subprocess
import sys
from pathlib import Path

import pytest

from hwnas import zoo
from hwnas.arch import Architecture, resolve_arch
from hwnas.errors import ArchError
from hwnas.report.zoo_table import zoo_rows, zoo_table

EXPECTED = {
    "fbnet_a",
    "fbnet_b",
    "fbnet_c",
    "mobilenet_v2",
    "proxylessnas_gpu",
    "proxylessnas_cpu",
    "proxylessnas_mobile",
    "spos",
    "fairnas_a",
    "fairnas_b",
    "fairnas_c",
    "single_path_nas",
    "darts_v1",
    "darts_v2",
    "pc_darts",
}


def test_zoo_has_every_published_model():
    assert set(zoo.names()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entries_validate_and_cite_their_source(name):
    arch = Architecture.from_zoo(name)
    assert arch.meta["description"] and arch.meta["paper"]["source"] and arch.meta["paper"]["top1"] > 70
    if arch.is_cell:
        assert arch.genotype.nodes("normal") == arch.genotype.nodes("reduce") == 4
    else:
        assert len(arch.choices) == arch.spec.num_layers


@pytest.mark.slow
def test_readme_zoo_table_is_what_hwnas_counts():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert zoo_table(zoo_rows(), markdown=True) in readme


def test_a_zoo_name_resolves_and_an_unknown_one_names_the_zoo():
    assert resolve_arch("fbnet_c") == Architecture.from_zoo("fbnet_c")
    with pytest.raises(ArchError, match=r"zoo model 'fbnet_z' does not exist; expected one of darts_v1, "):
        Architecture.from_zoo("fbnet_z")


def test_the_zoo_is_data_that_imports_neither_torch_nor_the_architecture_module():
    code = "import sys, hwnas.zoo; print(sorted(m for m in ('torch', 'hwnas.arch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
