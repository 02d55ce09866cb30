import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas.arch import FORMAT, Architecture, resolve_arch
from hwnas.errors import ArchError
from hwnas.spaces import load_space
from tests.helpers import random_choices

SPACE = load_space("fbnet_cifar")


def valid() -> dict:
    return {
        "format": FORMAT,
        "space": "fbnet_cifar",
        "space_args": {"num_classes": 7},
        "choices": random_choices(SPACE, random.Random(0)),
    }


def test_round_trip(tmp_path):
    arch = Architecture.from_dict({**valid(), "meta": {"strategy": "test"}})
    path = arch.save(tmp_path / "a" / "arch.json")
    again = Architecture.load(path)
    assert again == arch and again.spec.head.num_classes == 7
    assert json.loads(path.read_text())["format"] == FORMAT
    assert [p.name for p in path.parent.iterdir()] == ["arch.json"]  # no temporary file left


def test_from_space_records_only_changed_knobs():
    spec = load_space("fbnet", input_size=[3, 64, 64])
    arch = Architecture.from_space(spec, ["skip"] * 22)
    assert arch.space_args == {"input_size": [3, 64, 64]} and arch.spec.layers == spec.layers


def test_user_space_path_is_relative_to_the_file(tmp_path):
    (tmp_path / "my.yaml").write_text("candidates: [ir_k3_e3, skip]\nstages: [{channels: 8, layers: 2, stride: 2}]\n")
    (tmp_path / "arch.json").write_text(
        json.dumps({"format": FORMAT, "space": "my.yaml", "choices": ["ir_k3_e3", "skip"]})
    )
    arch = resolve_arch(tmp_path / "arch.json")
    assert arch.spec.name == "my" and arch.choices == ("ir_k3_e3", "skip")


def test_unknown_arch_name():
    with pytest.raises(
        ArchError, match=r"architecture 'fbnet_z' is neither a zoo model \(darts_v1, darts_v2, fairnas_a"
    ):
        resolve_arch("fbnet_z")


def _break(kind: str, data: dict, rng: random.Random, text: str) -> tuple[dict, str]:
    """Return a broken copy of `data` and the field its error must name."""
    data = json.loads(json.dumps(data))
    if kind == "missing":
        field = rng.choice(["format", "space", "choices"])
        del data[field]
        return data, field
    if kind == "format":
        data["format"] = rng.choice([text, "hwnas.arch/2", 1, None])
        return data, "format"
    if kind == "unknown_field":
        data["x" + text] = 1
        return data, "unknown field"
    if kind == "space":
        data["space"] = rng.choice(["nope" + text, "", 3, ["fbnet"]])
        return data, "space"
    if kind == "knob":
        data["space_args"] = rng.choice([{"bogus" + text: 1}, {"width_mult": -1}, {"num_classes": "ten"}, [1]])
        return data, "space_args"
    if kind == "count":
        n = rng.choice([0, 1, 21, 23, 50])
        data["choices"] = (data["choices"] * 3)[:n]
        return data, "choices"
    if kind == "type":
        data["choices"][rng.randrange(22)] = rng.choice([3, None, ["skip"], {"op": "skip"}])
        return data, "choices["
    if kind == "op":
        data["choices"][rng.randrange(22)] = rng.choice(["ir_k9_e6", "conv" + text, "k3_e6", "ir_k3_e6_g"])
        return data, "choices["
    if kind == "not_allowed":
        data["choices"][rng.randrange(22)] = rng.choice(["ir_k7_e6", "zero", "shuffle_k3", "ir_k3_e3_se"])
        return data, "not allowed at layer"
    if kind == "choices_type":
        data["choices"] = rng.choice(["skip", {"0": "skip"}, 22])
        return data, "choices"
    data["meta"] = rng.choice([[], "x", 1])
    return data, "meta"


KINDS = [
    "missing",
    "format",
    "unknown_field",
    "space",
    "knob",
    "count",
    "type",
    "op",
    "not_allowed",
    "choices_type",
    "meta",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16), text=st.text(min_size=1, max_size=8))
def test_broken_files_fail_with_one_line_naming_the_field(tmp_path, kind, seed, text):
    data, field = _break(kind, valid(), random.Random(seed), text)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ArchError) as info:
        Architecture.load(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert field in message


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, 200))
def test_truncated_json(tmp_path, cut):
    text = json.dumps(valid())
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) - cut])
    with pytest.raises(ArchError, match="not valid JSON"):
        Architecture.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ArchError, match="cannot read"):
        Architecture.load(tmp_path / "none.json")
