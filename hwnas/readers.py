"""Reading the files a user hands in (spaces, configs, architecture files): strict UTF-8 text, YAML that
refuses duplicate keys, JSON; bounded in size and depth. Every fault is one `HwnasError` line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import HwnasError

MAX_FILE_BYTES = 2 << 20  # a space, config, architecture file or cost table is a few kilobytes to a few hundred
MAX_DEPTH = 64  # nesting of lists and mappings
MAX_NODES = 50_000  # values, counted as YAML is parsed and again once its aliases are expanded
BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of a user's file; one line naming `what` and the fault when it is not such a file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise HwnasError(f"{what} {path}: is a directory, expected a file")
        if size > MAX_FILE_BYTES:
            raise HwnasError(f"{what} {path}: {size:,} bytes, expected a file of at most {MAX_FILE_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise HwnasError(f"{what} {path}: cannot read ({exc.strerror})") from None
    for bom, encoding in BOMS.items():
        if data.startswith(bom):
            raise HwnasError(f"{what} {path}: is {encoding} text, expected UTF-8 (save it as UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HwnasError(
            f"{what} {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}), expected UTF-8"
        ) from None
    if "\x00" in text:
        raise HwnasError(f"{what} {path}: holds NUL bytes (a binary file?), expected UTF-8 text")
    return text


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (where the last would silently win), and
    stopping as soon as the document holds more than MAX_NODES values, before it is all parsed."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise TooLarge(f"holds more than {MAX_NODES:,} values, expected a small file")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable mapping key {key!r}", key_node.start_mark
                ) from None
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}, expected each key once", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


class TooLarge(ValueError):
    """A file that holds more than the readers take; its message says what."""


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML with `StrictLoader`; bad syntax, duplicate keys, deep nesting and huge numbers are one line."""
    return _bounded(lambda: yaml.load(text, Loader=StrictLoader), where, (yaml.YAMLError,), "YAML")


def load_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """A user's YAML file (`what` names it in errors: 'space file', 'config'), read strictly."""
    return load_yaml_text(read_text(path, what), f"{what} {path}")


def load_json_text(text: str, where: str) -> Any:
    """Parse JSON; bad syntax, a repeated key (where the last would silently win), deep nesting and huge numbers
    are one line."""
    return _bounded(lambda: json.loads(text, object_pairs_hook=unique_keys), where, (json.JSONDecodeError,), "JSON")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key that appears twice (as `StrictLoader` does for YAML)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}, expected each key once")
        out[key] = value
    return out


def load_json(path: str | os.PathLike[str], what: str) -> Any:
    """A user's JSON file (an architecture file), read strictly."""
    return load_json_text(read_text(path, what), f"{what} {path}")


def _bounded(parse: Callable[[], Any], where: str, syntax: tuple[type[Exception], ...], fmt: str) -> Any:
    try:
        value = parse()
    except syntax as exc:
        raise HwnasError(f"{where}: not valid {fmt} ({_first_line(exc)})") from None
    except RecursionError:
        raise HwnasError(f"{where}: nested too deeply, expected at most {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if isinstance(exc, TooLarge):
            raise HwnasError(f"{where}: {exc}") from None
        if str(exc).startswith("duplicate key"):
            raise HwnasError(f"{where}: not valid {fmt} ({exc})") from None
        if "digits" in str(exc):  # an integer beyond Python's limit on int/str conversion
            raise HwnasError(f"{where}: holds an integer of thousands of digits, expected an ordinary number") from None
        raise HwnasError(f"{where}: cannot read a value ({_first_line(exc)})") from None
    check_shape(value, where)
    return value


def _first_line(exc: Exception) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        return exc.problem + (f" at line {mark.line + 1} column {mark.column + 1}" if mark else "")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_shape(value: Any, where: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH or holding more than MAX_NODES values (aliases expanded)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise HwnasError(f"{where}: holds more than {MAX_NODES:,} values, expected a small file")
        if isinstance(item, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise HwnasError(f"{where}: nested more than {MAX_DEPTH} levels deep, expected a flat file")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
