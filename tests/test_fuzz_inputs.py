"""Issue 14: a seeded fuzz of malformed architecture files, space files, config files, data trees and flags.

Every case must be refused before any heavy work: exit 2, one line on stderr that names the problem,
no traceback, and nothing created in the working directory."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from hwnas.arch import Architecture
from hwnas.cli import main

SEED = 14
LAYERWISE = {
    "name": "fuzz",
    "extends": "fbnet_small",
    "knobs": {"input_size": [3, 16, 16], "num_classes": 10},
    "stages": [{"channels": 16, "layers": 1, "stride": 1}, {"channels": 24, "layers": 1, "stride": 2}],
}
CELL = {"name": "fuzzcell", "kind": "cell", "knobs": {"init_channels": 8, "layers": 3, "nodes": 2}}
CONFIG = {"epochs": 1, "batch_size": 8, "lr": 0.05, "momentum": 0.9, "seed": 0, "data": "synthetic"}
BAD_OPTIONS = {
    "epochs": [-3, 0, 10**15, "nan", "x"],
    "batch_size": [0, -1, 10**15, "inf"],
    "lr": [0, -1, "nan", "inf", "x"],
    "seed": [-1, 2**40, "x"],
    "momentum": [1, -0.5, "nan"],
    "workers": [-1, 10**6, "x"],
    "nonsense_option": [1],
}
YAML_SPECIAL = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}
JSON_SPECIAL = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


@dataclass
class Case:
    category: str
    argv: list[str]
    files: dict[str, bytes]
    names: tuple[str, ...]  # at least one of these must appear in the error line

    def __repr__(self) -> str:
        return f"{self.category}: {' '.join(self.argv)[:80]}"


def to_yaml(value: object) -> str:
    """Flow-style YAML (JSON with YAML's spelling of non-finite numbers)."""
    text = json.dumps(value)
    for word, spelled in YAML_SPECIAL.items():
        text = text.replace(f'"{word}"', spelled)
    return text + "\n"


def to_json(value: object) -> str:
    text = json.dumps(value)
    for word, spelled in JSON_SPECIAL.items():
        text = text.replace(f'"{word}"', spelled)
    return text


def file_damage(rng: random.Random, good: str, fmt: str) -> tuple[bytes, tuple[str, ...]]:
    """A damaged copy of a valid file's text: truncation, garbage, another encoding, depth or a huge integer."""
    kind = rng.choice(["truncate", "binary", "utf16", "latin1", "deep", "digits", "nul", "toplevel"])
    if kind == "truncate":
        cut = good.rfind("}") if fmt == "json" else good.rfind("]")
        return good[: rng.randint(max(1, cut - 20), cut - 1) if cut > 1 else 1].encode(), (fmt.upper(), "expected")
    if kind == "binary":
        return bytes(rng.randrange(128, 256) for _ in range(rng.randint(8, 200))), ("UTF-8",)
    if kind == "utf16":
        return good.encode("utf-16"), ("UTF-16",)
    if kind == "latin1":
        return (good.rstrip() + (" " if fmt == "yaml" else "") + "\xe9\n").encode("latin-1"), ("UTF-8",)
    if kind == "deep":
        depth = rng.choice([70, 2_000, 100_000])
        return ("[" * depth + "]" * depth).encode(), ("nested", "deep")
    if kind == "digits":
        return (f'{{"x": {"7" * rng.randint(4400, 6000)}}}').encode(), ("digits",)
    if kind == "nul":
        return good.encode() + b"\x00\x00", ("NUL",)
    return rng.choice([b"[1, 2, 3]", b"42", b'"text"']), ("expected",)


def key_damage(rng: random.Random, base: dict, where: list[str], fields: dict[str, list]) -> tuple[dict, tuple]:
    """A copy of `base` with one bad key: an unknown one, a required one deleted, or a bad value."""
    data = json.loads(json.dumps(base))
    kind = rng.choice(["unknown", "value", "value", "delete"] if where else ["unknown", "value", "value"])
    if kind == "unknown":
        key = rng.choice(["colour", "epochz", "Stages", "knobz", "x" * 30])
        data[key] = rng.choice([1, "a", [], {}])
        return data, (key,)
    if kind == "delete":
        key = rng.choice(where)
        del data[key]
        return data, (key,)
    key = rng.choice(sorted(fields))
    target, name = (data["knobs"], key) if "knobs" in data and key in fields.get("_knobs", []) else (data, key)
    target[name] = rng.choice(fields[key])
    return data, (name,)


def space_cases(rng: random.Random, n: int) -> list[Case]:
    knob_values = {
        "input_size": [[3, 16], [0, 16, 16], [3, 100_000, 100_000], [3, -1, 16], "3x16x16", [3, 16.5, 16]],
        "num_classes": [0, -1, 10**15, 2.5, "ten", "nan"],
        "width_mult": [0, -1, "inf", "nan", 1e9, "wide"],
        "dropout": [1, -0.5, "nan", 2],
        "activation": ["gelu2", 3, None],
        "bn_momentum": [0, 2, "inf"],
        "stage_channels": [[16], [0, 8], [100_000_000_000, 16]],
    }
    cell_values = {
        "init_channels": [1, 0, 10**11, "inf", 2.5],
        "layers": [2, -1, 10**9, "nan"],
        "nodes": [0, 10**6, "x"],
        "ops": [["none"], [], ["not_an_op"], [3], "no_set"],
        "num_classes": [0, 10**15],
        "input_size": [[3, 32], [3, 100_000, 100_000]],
    }
    cases = []
    for i in range(n):
        cell = i % 3 == 0
        base = CELL if cell else LAYERWISE
        values = cell_values if cell else knob_values
        mode = rng.random()
        if mode < 0.25:
            text, names = file_damage(rng, to_yaml(base), "yaml")
        elif mode < 0.35:
            body = to_yaml(base).strip()[1:-1]
            key = rng.choice(list(base))
            text, names = f"{{{body}, {json.dumps(key)}: {json.dumps(base[key])}}}\n".encode(), ("duplicate",)
        elif mode < 0.45 and cell:
            extra = rng.choice(["stages", "stem", "head", "candidates"])
            text, names = to_yaml({**base, extra: [{"channels": 8, "layers": 1}]}).encode(), (extra,)
        elif mode < 0.55:
            option = rng.choice(sorted(BAD_OPTIONS))
            data = {**base, "search_defaults": {option: rng.choice(BAD_OPTIONS[option])}}
            text, names = to_yaml(data).encode(), (option,)
        else:
            data = json.loads(json.dumps(base))
            knob = rng.choice(sorted(values))
            data["knobs"] = {**data["knobs"], knob: rng.choice(values[knob])}
            text, names = to_yaml(data).encode(), (knob,)
        cases.append(Case("space file", ["spaces", "space.yaml"], {"space.yaml": text}, names))
    return cases


def arch_cases(rng: random.Random, n: int) -> list[Case]:
    good = Architecture.from_zoo("fbnet_a").to_dict()
    fields = {
        "format": ["hwnas.arch/2", 1, None],
        "space": ["nowhere", "", 3, "missing.yaml"],
        "space_args": [
            [],
            "x",
            {"input_size": [3, 100_000, 100_000]},
            {"width_mult": "inf"},
            {"num_classes": 10**15},
            {"width_mult": "nan"},
            {"bogus_knob": 1},
        ],
        "choices": [[], "skip", ["skip"], ["no_such_op"] * len(good["choices"]), [3] * len(good["choices"])],
        "meta": [[], "x", 3],
        "genotype": [{"normal": []}],
    }
    commands = [["show"], ["profile"], ["profile", "--json"], ["train"], ["export", "--format", "onnx", "-o", "o.onnx"]]
    cases = []
    for _ in range(n):
        if rng.random() < 0.3:
            text, names = file_damage(rng, json.dumps(good), "json")
        else:
            data, names = key_damage(rng, good, ["format", "space", "choices"], fields)
            text = to_json(data).encode()
        command = rng.choice(commands)
        cases.append(Case("architecture file", [command[0], "arch.json", *command[1:]], {"arch.json": text}, names))
    return cases


def config_cases(rng: random.Random, n: int) -> list[Case]:
    fields = {
        "epochs": [0, -3, 10**9, 2.5, "ten", "nan"],
        "batch_size": [0, -1, 10**15, "inf"],
        "lr": [0, -0.1, "nan", "inf", "-inf", "fast"],
        "momentum": [1, -0.5, "nan", 5],
        "seed": [-1, 2**40, 1.5, "x"],
        "workers": [-1, 10**6],
        "val_split": [0, 1, -0.1, "nan"],
        "label_smoothing": [1, -1, "inf"],
        "optimizer": ["adamw", 3, None],
        "input": ["3x16", "0x16x16", "1x100000x100000", "3x-1x16", 3],
        "run_dir": ["taken_file"],
        "keep_checkpoints": [0, 10**9],
    }
    commands = [["train", "fbnet_a"], ["search", "fbnet_small"], ["supernet", "train", "fbnet_small"]]
    cases = []
    for _ in range(n):
        files: dict[str, bytes] = {}
        if rng.random() < 0.3:
            text, names = file_damage(rng, to_yaml(CONFIG), "yaml")
        elif rng.random() < 0.15:
            body = to_yaml(CONFIG).strip()[1:-1]
            key = rng.choice(list(CONFIG))
            text, names = f"{{{body}, {json.dumps(key)}: 3}}\n".encode(), ("duplicate",)
        else:
            data, names = key_damage(rng, CONFIG, [], fields)
            if data.get("run_dir") == "taken_file":
                files["taken_file"] = b"x"
            text = to_yaml(data).encode()
        files["config.yaml"] = text
        cases.append(Case("config file", [*rng.choice(commands), "--config", "config.yaml"], files, names))
    return cases


def flag_cases(rng: random.Random, n: int) -> list[Case]:
    flags: list[tuple[list[str], str, list[str]]] = [
        (["train", "fbnet_a"], "--epochs", ["0", "-3", "ten", "1e3", "9" * 5000]),
        (["train", "fbnet_a"], "--lr", ["nan", "inf", "-1", "0", "1e999", "fast"]),
        (["train", "fbnet_a"], "--seed", ["-1", "4294967296", "1.5"]),
        (["train", "fbnet_a"], "--batch-size", ["0", "-8", "1000000000000000"]),
        (["train", "fbnet_a"], "--momentum", ["1", "-0.1", "nan"]),
        (["train", "fbnet_a"], "--input", ["1x100000x100000", "3x16", "0x8x8", "3xax3"]),
        (["train", "fbnet_a"], "--run-dir", ["taken_file"]),
        (["train", "fbnet_a"], "--data", ["bogus", "folder:nowhere", "cifar10:nowhere", "folder:taken_file"]),
        (["train", "fbnet_a"], "--optimizer", ["adamw", ""]),
        (["train", "fbnet_a"], "--threads", ["0", "-1", "1025", "x"]),
        (["profile", "fbnet_a"], "--threads", ["0", "-1", "99999", "x"]),
        (["profile", "fbnet_a"], "--batch", ["0", "-1", "1e3", "9" * 5000]),
        (["profile", "fbnet_a"], "--input", ["1x100000x100000", "2000x8x8", "3x224"]),
        (["show", "fbnet_a"], "--input", ["0x1x1", "x"]),
        (["latency", "validate", "fbnet_small"], "--samples", ["0", "1", "-5", "x"]),
        (["latency", "fbnet_small"], "--threads", ["0", "-2"]),
        (["latency", "fbnet_small"], "--batch", ["0"]),
        (["search", "fbnet_small"], "--alpha", ["-1", "0", "nan"]),
        (["search", "fbnet_small"], "--temperature", ["0", "-1", "inf"]),
        (["search", "fbnet_small"], "--target", ["0", "-5", "nan"]),
        (["search", "fbnet_small"], "--latency-threads", ["0"]),
        (["search", "fbnet_small"], "--population", ["1", "0", "10000000"]),
        (["search", "darts"], "--init-channels", ["1", "100000000000"]),
        (["search", "darts"], "--epochs", ["-3", "0"]),
        (["supernet", "train", "fbnet_small"], "--epochs", ["0"]),
        (["quickstart"], "--search-epochs", ["0", "-1"]),
        (["quickstart"], "--train-epochs", ["0"]),
        (["faces", "out"], "--size", ["0", "-1", "100000"]),
        (["faces", "out"], "--identities", ["0", "-4"]),
    ]
    cases = []
    for _ in range(n):
        head, flag, values = rng.choice(flags)
        value = rng.choice(values)
        files = {"taken_file": b"x"} if "taken_file" in value else {}
        names = (flag, flag.lstrip("-").replace("-", "_"), value[:20])
        cases.append(Case("flag", [*head, flag, value], files, names))
    return cases


def data_tree_cases(rng: random.Random, n: int) -> list[Case]:
    trees: list[tuple[str, dict[str, bytes], tuple[str, ...]]] = [
        ("folder:tree", {"tree/readme.txt": b"x"}, ("class folders", "tree")),
        ("folder:tree", {"tree/a/x.png": b"not a png", "tree/b/y.png": b""}, ("tree", "image")),
        ("folder:tree", {"tree/train/a/x.jpg": os.urandom(64)}, ("tree", "image", "val")),
        ("cifar10:tree", {"tree/data_batch_1": b"x"}, ("CIFAR",)),
        ("cifar100:tree", {"tree/train": b"x"}, ("CIFAR",)),
        ("tiny-imagenet:tree", {"tree/x": b"x"}, ("tree", "Tiny", "wnids")),
        ("folder:tree/file", {"tree/file": b"x"}, ("not a directory",)),
    ]
    cases = []
    for _ in range(n):
        data, files, names = rng.choice(trees)
        extra = rng.choice([[], ["--epochs", "1"], ["--batch-size", "4"]])
        cases.append(Case("data tree", ["train", "fbnet_a", "--data", data, *extra], dict(files), names))
    return cases


def generate() -> list[Case]:
    rng = random.Random(SEED)
    return [
        *space_cases(rng, 110),
        *arch_cases(rng, 80),
        *config_cases(rng, 60),
        *flag_cases(rng, 70),
        *data_tree_cases(rng, 14),
    ]


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def run_case(case: Case, root: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """None when the case was refused as it should be, else what went wrong."""
    for name, content in case.files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    before = snapshot(root)
    capsys.readouterr()
    try:
        code = main(case.argv)
    except BaseException as exc:
        return f"raised {type(exc).__name__}: {exc}"[:300]
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    created = sorted(set(snapshot(root)) - set(before))
    if code != 2 or len(lines) != 1 or "Traceback" in out.err or created:
        return f"exit {code}, stderr {out.err.strip()[:300]!r}, created {created[:5]}"
    if not any(name.lower() in lines[0].lower() for name in case.names):
        return f"the line names none of {case.names}: {lines[0][:300]!r}"
    return None


CASES = generate()


def test_at_least_300_cases_in_five_categories():
    categories = {case.category for case in CASES}
    assert len(CASES) >= 300 and categories == {"space file", "architecture file", "config file", "flag", "data tree"}


@pytest.mark.slow
def test_malformed_inputs_get_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys):
    failures = []
    for i, case in enumerate(CASES):
        root = tmp_path / f"case{i}"
        root.mkdir()
        monkeypatch.chdir(root)
        problem = run_case(case, root, capsys)
        if problem is not None:
            failures.append(f"{case!r}: {problem}")
    assert not failures, f"{len(failures)} of {len(CASES)} cases:\n" + "\n".join(failures[:40])
