"""Latency models users bring (a function fitted to a phone, an analytical model): tables from a layer model,
architecture models for one-shot searches, and a DNAS search priced by a model's table through the CLI."""

import json
import math
import random
from collections.abc import Sequence

import pytest

from hwnas.arch import Architecture
from hwnas.cli import main
from hwnas.cost import profile_arch
from hwnas.cost.build import build_table, load_or_build
from hwnas.cost.cell_cost import CellCostModel
from hwnas.cost.interleaved import QUICK_ROUNDS
from hwnas.cost.models import (
    ArchitectureCostModel,
    ArchitectureLatencyModel,
    LatencyQuery,
    LayerLatencyModel,
    load_latency_model,
    table_from_model,
)
from hwnas.cost.table import CostTable
from hwnas.cost.validate import validate_table
from hwnas.engine.distributed import Dist
from hwnas.errors import HwnasError
from hwnas.spaces import load_space
from hwnas.spaces.genotype import random_genotype
from hwnas.strategies.config import RandomSearchConfig
from hwnas.strategies.constraints import Constraints
from hwnas.strategies.evolution import SearchRules
from tests.helpers import TINY_SPACE, random_choices

MS_PER_MMAC, MS_PER_ENTRY = 0.004, 0.01  # an analytical model: latency proportional to MACs, plus an overhead


def macs_model(query: LatencyQuery) -> float:
    return MS_PER_MMAC * query.macs / 1e6 + MS_PER_ENTRY


def model_sum(arch: Architecture, entries: int) -> float:
    """What `macs_model` adds up to over `entries` table entries covering `arch` (all its MACs)."""
    return MS_PER_MMAC * profile_arch(arch).macs / 1e6 + MS_PER_ENTRY * entries


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return load_space(str(path))


def test_a_layer_model_table_predicts_the_sum_of_the_model_over_an_architectures_entries(space):
    table = table_from_model(space, macs_model)
    rng = random.Random(0)
    for _ in range(5):
        choices = random_choices(space, rng)
        arch = Architecture.from_space(space, choices)
        expected = model_sum(arch, entries=len(choices) + 2)  # stem, one per layer, head
        assert table.predict(space, choices) == pytest.approx(expected, rel=1e-9)
    assert table.meta["device"] == f"model:{macs_model.__module__}.macs_model" and table.meta["batch"] == 1


def test_the_model_sees_each_entry_as_a_measured_table_keys_it(space):
    seen: dict[str, LatencyQuery] = {}

    def recording(query: LatencyQuery) -> float:
        seen[query.key] = query
        return 1.0

    table = table_from_model(space, recording, batch=4)
    measured = build_table(space, policy=QUICK_ROUNDS, progress=False)
    assert list(table.entries) == list(measured.entries) == list(seen)
    for key, entry in table.entries.items():
        assert (entry["macs"], entry["params"]) == (measured.entries[key]["macs"], measured.entries[key]["params"])
        assert entry["macs"] == seen[key].macs and entry["latency_ms"]["median"] == 1.0
    first = space.layers[0]
    query = next(q for q in seen.values() if q.op == "ir_k5_e3" and q.c_in == first.c_in)
    assert (query.c_out, query.stride, (query.height, query.width)) == (first.c_out, first.stride, first.input_hw)
    assert query.batch == 4 and query.config == "act:relu-e1:keep" and query.key.startswith("ir_k5_e3-input:8x8x8")
    assert {q.op for q in seen.values()} == {"stem", "head", *first.candidates}


@pytest.mark.parametrize("value", [math.nan, -0.5, math.inf, "fast", None])
def test_a_latency_that_is_not_finite_and_non_negative_is_refused_naming_the_entry(space, value):
    with pytest.raises(HwnasError) as err:
        table_from_model(space, lambda query: value if query.op == "skip" else 1.0)
    message = str(err.value)
    assert "\n" not in message and "entry 'skip-input:" in message and repr(value) in message
    assert "expected a finite latency >= 0 ms" in message


def test_an_object_with_latency_ms_or_a_call_is_a_model(space):
    class PhoneLookup:
        """A lookup by op, as a table fitted on a phone would be."""

        def __init__(self) -> None:
            self.ms = {"stem": 0.3, "head": 0.2, "ir_k3_e3": 1.0, "ir_k5_e3": 1.5, "skip": 0.1}

        def latency_ms(self, query: LatencyQuery) -> float:
            return self.ms[query.op]

    class Constant:
        def __call__(self, query: LatencyQuery) -> float:
            return 2.0

    table = table_from_model(space, PhoneLookup())
    assert table.predict(space, ["ir_k5_e3", "skip", "ir_k3_e3"]) == pytest.approx(0.3 + 1.5 + 0.1 + 1.0 + 0.2)
    assert table.meta["device"].endswith("PhoneLookup")
    assert table_from_model(space, Constant()).predict(space, ["skip"] * 3) == pytest.approx(2.0 * 5)
    with pytest.raises(HwnasError, match="expected a callable"):
        table_from_model(space, 3.5)


def test_a_cell_space_table_from_a_model_prices_genotypes(tmp_path):
    space = load_space("darts", input_size=[3, 8, 8], init_channels=4, layers=3, num_classes=4)
    table = table_from_model(space, macs_model)
    table.check_covers(space, "table")
    assert set(table.entries) == set(build_table(space, measure=False, progress=False).entries)
    genotype = random_genotype(space.ops, space.nodes, random.Random(1))
    arch = Architecture.from_genotype(space, genotype)
    entries = 2 + len(space.cells) * (2 + 2 * space.nodes)  # stem, head; per cell two inputs and two edges a node
    cost = CellCostModel.from_table(table, space, "latency").of(genotype)
    assert cost == pytest.approx(model_sum(arch, entries), rel=1e-6)  # CellCostModel holds float32


def test_a_saved_model_table_loads_and_serves_as_a_latency_table(space, tmp_path):
    path = table_from_model(space, macs_model, batch=2).save(tmp_path / "phone.json")
    loaded = load_or_build(space, table=str(path))
    assert loaded.entries == table_from_model(space, macs_model, batch=2).entries
    assert loaded.meta == CostTable.load(path).meta and loaded.meta["device"].startswith("model:")
    with pytest.raises(HwnasError, match="comes from a latency model"):
        validate_table(space, loaded, samples=2, progress=False)


def test_a_dnas_search_priced_by_a_model_table_reports_the_models_latency(space, tmp_path, capsys):
    table = table_from_model(space, macs_model)
    path = table.save(tmp_path / "phone.json")
    fixed, rows = table.matrix(space)
    cheapest = fixed + sum(min(row) for row in rows)
    dearest = fixed + sum(max(row) for row in rows)
    target = round((cheapest + dearest) / 2, 4)
    run = tmp_path / "run"
    args = [
        "search", space.origin, "--data", "synthetic", "--input", "1x8x8", "--epochs", "1",
        "--weight-warmup-epochs", "0", "--batch-size", "128", "--train-portion", "0.5", "--no-progress",
        "--latency-table", str(path), "--cost", "latency", "--target", str(target), "--hw-loss", "add",
        "--run-dir", str(run),
    ]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    arch = Architecture.load(run / "arch.json")
    assert list(arch.choices) == summary["choices"]
    expected = model_sum(arch, entries=len(arch.choices) + 2)
    assert summary["predicted_latency_ms"] == pytest.approx(expected, rel=1e-9)
    assert arch.meta["expected"]["latency_ms"] == pytest.approx(expected, rel=1e-6)


class LookedUp:
    """Accuracies looked up instead of measured: the interface of PathEvaluator."""

    def __init__(self) -> None:
        self.cache: dict[tuple[int, ...], float] = {}

    def evaluate(self, paths: Sequence[Sequence[int]], ctx: Dist) -> list[tuple[tuple[int, ...], float]]:
        new = [(tuple(p), float(sum(p))) for p in paths if tuple(p) not in self.cache]
        self.cache.update(new)
        return new


def test_an_architecture_model_limits_and_prices_a_one_shot_search(space):
    calls = []

    def whole_network(arch: Architecture) -> float:  # not a sum over layers: the ops interact
        calls.append(arch.choices)
        convs = sum(op != "skip" for op in arch.choices)
        return 1.0 + convs**2 + 0.5 * arch.choices.count("ir_k5_e3")

    latency = ArchitectureCostModel(space, whole_network)
    assert latency.cheapest() == (1.0, [2, 2, 2])  # all skip
    constraints = Constraints({"latency": 5.0}, {"latency": latency})
    constraints.check_feasible(space)
    evaluator = LookedUp()
    SearchRules(RandomSearchConfig(random_iteration=6, seed=0, progress=False), [3] * 3, constraints, evaluator).run()
    assert len(evaluator.cache) == 6
    for path in evaluator.cache:
        choices = [layer.candidates[i] for layer, i in zip(space.layers, path, strict=True)]
        assert constraints.cost(path)["latency"] == whole_network(Architecture.from_space(space, choices)) <= 5.0
    asked = len(calls)
    constraints.cost(next(iter(evaluator.cache)))
    assert len(calls) == asked  # each path asked once
    with pytest.raises(HwnasError, match=r"--max-latency 0\.5: no architecture"):
        Constraints({"latency": 0.5}, {"latency": latency}).check_feasible(space)


def test_an_architecture_model_is_refused_where_layer_costs_are_needed(space):
    model = ArchitectureLatencyModel(lambda arch: 1.0)
    with pytest.raises(HwnasError) as err:
        table_from_model(space, model)
    assert "\n" not in str(err.value) and "needs a layer latency model" in str(err.value)
    assert "DNAS and DARTS" in str(err.value)
    with pytest.raises(HwnasError, match="DARTS needs a layer latency model"):
        ArchitectureCostModel(load_space("darts", init_channels=4, layers=3), model)
    with pytest.raises(HwnasError, match="is a layer model; pricing the paths of a one-shot search"):
        ArchitectureCostModel(space, LayerLatencyModel(macs_model))


def test_a_model_is_found_by_module_or_file_name(space, tmp_path):
    source = tmp_path / "phone_model.py"
    source.write_text(
        "from hwnas.cost.models import ArchitectureLatencyModel\n"
        "def per_layer(query):\n    return 0.5\n"
        "whole = ArchitectureLatencyModel(lambda arch: 3.0)\n"
    )
    layer = load_latency_model(f"{source}:per_layer")
    assert isinstance(layer, LayerLatencyModel)
    assert table_from_model(space, layer).predict(space, ["skip"] * 3) == pytest.approx(0.5 * 5)
    assert isinstance(load_latency_model(f"{source}:whole"), ArchitectureLatencyModel)
    assert isinstance(load_latency_model(f"{macs_model.__module__}:macs_model"), LayerLatencyModel)
    for spec, message in [
        ("no_colon", "expected MODULE:NAME"),
        (f"{source}:missing", "has no 'missing'"),
        ("no_such_module_here:f", "cannot import"),
        (f"{tmp_path / 'absent.py'}:f", "no file"),
    ]:
        with pytest.raises(HwnasError, match=message):
            load_latency_model(spec)
