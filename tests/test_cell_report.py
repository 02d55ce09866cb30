import copy
import shutil

import numpy as np
import pytest

from hwnas.blocks.cell_ops import OP_SETS
from hwnas.errors import HwnasError
from hwnas.report import cell_plots as cells

PNG = b"\x89PNG"
OPS = list(OP_SETS["darts"])


@pytest.fixture
def darts_v2():
    return {
        "normal": [
            ["sep_conv_3x3", 0],
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 0],
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 1],
            ["skip_connect", 0],
            ["skip_connect", 0],
            ["dil_conv_3x3", 2],
        ],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [
            ["max_pool_3x3", 0],
            ["max_pool_3x3", 1],
            ["skip_connect", 2],
            ["max_pool_3x3", 1],
            ["max_pool_3x3", 0],
            ["skip_connect", 2],
            ["skip_connect", 2],
            ["max_pool_3x3", 1],
        ],
        "reduce_concat": [2, 3, 4, 5],
    }


@pytest.fixture
def sparse():
    return {
        "normal": [["none", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 2], ["none", 1]],
        "normal_concat": [2, 3],
        "reduce": [["none", 0], ["none", 1]],
        "reduce_concat": [2],
    }


@pytest.fixture
def no_graphviz(monkeypatch):
    monkeypatch.setattr(cells.shutil, "which", lambda name: None)


def fake_dot(tmp_path, body: str) -> str:
    script = tmp_path / "bin" / "dot"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\ncat > /dev/null\n{body}\n")
    script.chmod(0o755)
    return str(script)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_alpha_heatmap_softmax(tmp_path):
    rng = np.random.default_rng(0)
    edges = sum(i + 2 for i in range(4))
    probs = {cell: softmax(rng.normal(size=(edges, len(OPS)))).tolist() for cell in ("normal", "reduce")}
    path = cells.alpha_heatmap(probs, OPS, 4, tmp_path / "alpha.png", "softmax(α)")
    assert path == tmp_path / "alpha.png"
    assert path.read_bytes().startswith(PNG)


def test_alpha_heatmap_unnormalised(tmp_path):
    rng = np.random.default_rng(1)
    probs = {"normal": rng.random((5, len(OPS))) * 0.3, "reduce": np.zeros((5, len(OPS)))}
    path = cells.alpha_heatmap(probs, OPS, 2, tmp_path / "sub" / "strength.png", "α·β")
    assert path.read_bytes().startswith(PNG)


def test_alpha_heatmap_boxes_what_the_sparse_genotype_keeps(tmp_path):
    """Under CNAS's sparse mode `none` competes and an edge may be dropped: the boxes follow the genotype, not
    each edge's strongest real op."""
    import torch

    from hwnas.strategies.derive import derive_genotype

    rng = np.random.default_rng(2)
    edges = sum(i + 2 for i in range(4))
    probs = {cell: softmax(rng.normal(size=(edges, len(OPS)))) for cell in ("normal", "reduce")}
    probs["normal"][:, OPS.index("none")] += 0.5  # `none` wins several edges
    strengths = {cell: torch.tensor(p) for cell, p in probs.items()}
    sparse = derive_genotype(strengths, tuple(OPS), 4, sparse=True).to_dict()
    dense = derive_genotype(strengths, tuple(OPS), 4).to_dict()
    marks = cells.genotype_marks(sparse, OPS, 4)
    assert any(OPS[j] == "none" for _, j in marks["normal"])
    assert marks != cells.genotype_marks(dense, OPS, 4)
    assert len(marks["normal"]) == 8  # two inputs for each of the 4 nodes, nothing on the other 6 edges
    assert marks["normal"] != cells.strongest_marks({"normal": probs["normal"]}, OPS)["normal"]
    path = cells.alpha_heatmap(probs, OPS, 4, tmp_path / "alpha.png", "sparse", genotype=sparse)
    assert path.read_bytes().startswith(PNG)


def test_alpha_heatmap_rejects_wrong_shape(tmp_path):
    with pytest.raises(HwnasError, match=r"probs\['normal'\]: got shape \(4, 8\), expected \(5, 8\)"):
        cells.alpha_heatmap({"normal": np.zeros((4, len(OPS)))}, OPS, 2, tmp_path / "x.png", "t")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("cell", ["normal", "reduce"])
def test_genotype_dot(darts_v2, cell):
    dot = cells.genotype_dot(darts_v2, cell)
    assert dot == cells.genotype_dot(copy.deepcopy(darts_v2), cell)
    assert "rankdir=LR" in dot
    for op, _ in darts_v2[cell]:
        assert f'label="{op}"' in dot
    assert dot.count("->") == len(darts_v2[cell]) + len(darts_v2[f"{cell}_concat"])
    assert dot.count("-> c_k;") == 4
    assert 'label="c_{k-2}"' in dot and 'label="c_{k-1}"' in dot and 'label="c_{k}"' in dot
    assert "style=dashed" not in dot


def test_genotype_dot_draws_none_dashed_and_quotes(sparse):
    dot = cells.genotype_dot(sparse, "normal")
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(edges) == 4 + 2
    assert [("style=dashed" in line) for line in edges[:4]] == [True, False, False, True]
    sparse["normal"][1][0] = 'odd "op" \\ name'
    assert r'label="odd \"op\" \\ name"' in cells.genotype_dot(sparse, "normal")


def test_draw_cell_without_graphviz(darts_v2, tmp_path, no_graphviz):
    files = cells.draw_cell(darts_v2, "normal", tmp_path)
    assert files == [tmp_path / "normal.dot", tmp_path / "normal.png"]
    assert files[0].read_text() == cells.genotype_dot(darts_v2, "normal")
    assert files[1].read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normal.dot", "normal.png"]


def test_draw_cell_with_none_edges(sparse, tmp_path, no_graphviz):
    files = cells.draw_cell(sparse, "reduce", tmp_path, stem="sparse_reduce")
    assert [p.name for p in files] == ["sparse_reduce.dot", "sparse_reduce.png"]
    assert files[1].read_bytes().startswith(PNG)


def test_draw_cell_with_dot_output(darts_v2, tmp_path, monkeypatch):
    exe = fake_dot(tmp_path, 'case "$1" in -Tsvg) echo "<svg/>";; -Tpng) printf "\\211PNG fake";; esac')
    monkeypatch.setattr(cells.shutil, "which", lambda name: exe)
    files = cells.draw_cell(darts_v2, "reduce", tmp_path / "out", stem="r")
    assert [p.name for p in files] == ["r.dot", "r.svg", "r.png"]
    assert files[1].read_text() == "<svg/>\n"
    assert files[2].read_bytes() == b"\x89PNG fake"


def test_draw_cell_falls_back_when_dot_fails(darts_v2, tmp_path, monkeypatch):
    exe = fake_dot(tmp_path, 'echo "Error: syntax" >&2; exit 1')
    monkeypatch.setattr(cells.shutil, "which", lambda name: exe)
    with pytest.warns(RuntimeWarning, match=r"-Tsvg: exit 1 \(Error: syntax\); drawing normal.png with matplotlib"):
        files = cells.draw_cell(darts_v2, "normal", tmp_path / "out")
    assert [p.name for p in files] == ["normal.dot", "normal.png"]
    assert files[1].read_bytes().startswith(PNG)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["normal.dot", "normal.png"]


@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz dot is not installed")
def test_draw_cell_with_graphviz(darts_v2, tmp_path):
    files = cells.draw_cell(darts_v2, "normal", tmp_path)
    assert [p.name for p in files] == ["normal.dot", "normal.svg", "normal.png"]
    assert b"<svg" in files[1].read_bytes()
    assert files[2].read_bytes().startswith(PNG)


def test_draw_genotype(darts_v2, tmp_path, no_graphviz):
    files = cells.draw_genotype(darts_v2, tmp_path)
    assert [p.name for p in files] == ["normal.dot", "normal.png", "reduce.dot", "reduce.png"]
    assert all(p.stat().st_size > 0 for p in files)


def test_draw_genotype_checks_both_cells_first(darts_v2, tmp_path, no_graphviz):
    del darts_v2["reduce_concat"]
    with pytest.raises(HwnasError, match="missing field 'reduce_concat'"):
        cells.draw_genotype(darts_v2, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _drop_normal(g):
    del g["normal"]


def _odd(g):
    g["normal"].pop()


def _input_too_big(g):
    g["normal"][2][1] = 3  # node 1 takes inputs 0..2


def _negative_input(g):
    g["normal"][0][1] = -1


def _not_a_pair(g):
    g["normal"][4] = ["sep_conv_3x3"]


def _concat_too_big(g):
    g["normal_concat"] = [2, 3, 4, 6]


def _concat_not_list(g):
    g["normal_concat"] = 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop_normal, r"genotype: missing field 'normal'"),
        (_odd, r"genotype\['normal'\]: got 7 entries, expected a non-empty list of \[op, input\] pairs"),
        (_input_too_big, r"genotype\['normal'\]\[2\]: input 3 of node 1 is out of range, expected 0\.\.2"),
        (_negative_input, r"genotype\['normal'\]\[0\]: input -1 of node 0 is out of range, expected 0\.\.1"),
        (_not_a_pair, r"genotype\['normal'\]\[4\]: got \['sep_conv_3x3'\], expected \[op name, input index\]"),
        (_concat_too_big, r"genotype\['normal_concat'\]: got state 6, expected an index in 0\.\.5"),
        (_concat_not_list, r"genotype\['normal_concat'\]: got 5, expected a non-empty list"),
    ],
)
def test_malformed_genotype(darts_v2, tmp_path, change, message):
    change(darts_v2)
    with pytest.raises(HwnasError, match=message):
        cells.genotype_dot(darts_v2, "normal")
    with pytest.raises(HwnasError, match=message):
        cells.draw_cell(darts_v2, "normal", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_cell(darts_v2):
    with pytest.raises(HwnasError, match="cell: got 'middle', expected one of normal, reduce"):
        cells.genotype_dot(darts_v2, "middle")
