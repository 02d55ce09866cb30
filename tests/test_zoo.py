from pathlib import Path

import pytest

from hwnas import zoo
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
    arch = zoo.load(name)
    assert arch.meta["description"] and arch.meta["paper"]["source"] and arch.meta["paper"]["top1"] > 70
    if arch.is_cell:
        assert arch.genotype.nodes("normal") == arch.genotype.nodes("reduce") == 4
    else:
        assert len(arch.choices) == arch.spec.num_layers


def test_readme_zoo_table_is_what_hwnas_counts():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert zoo_table(zoo_rows(), markdown=True) in readme
