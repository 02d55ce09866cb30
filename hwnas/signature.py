"""The options of the Python entry points as `help()`, `inspect.signature` and notebooks show them: keyword-only
parameters and an "Options" docstring section generated from the config dataclasses (their help texts are the
command line's), so both follow the dataclasses as they change.

An entry point whose options class depends on its arguments (`search`: the space's kind) shows the union of its
classes, each option tagged with the scopes (classes) that read it; a default that is not the same in every scope
is a `ScopedDefault`, which the entry point takes as "not given" when a caller passes it back."""

from __future__ import annotations

import functools
import inspect
import operator
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import Field, dataclass, fields
from typing import Any, Literal, TypeVar

Function = TypeVar("Function", bound=Callable[..., Any])


@dataclass(frozen=True)
class ScopedDefault:
    """The default of an option per scope that reads it, where it is not one value for every scope."""

    values: tuple[tuple[str, Any], ...]

    def __repr__(self) -> str:
        return " | ".join(f"{value} ({', '.join(scopes)})" for value, scopes in grouped(self.values).items())


def grouped(pairs: typing.Iterable[tuple[str, Any]], key: Callable[[Any], str] = repr) -> dict[str, list[str]]:
    """The scopes of each distinct value (told apart by `key`), in first-seen order."""
    out: dict[str, list[str]] = {}
    for scope, value in pairs:
        out.setdefault(key(value), []).append(scope)
    return out


@dataclass
class Option:
    """One keyword: its annotation, its default (a `ScopedDefault` where the scopes differ) and its help per scope."""

    name: str
    group: str
    annotation: Any
    default: Any
    helps: dict[str, str]


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def option_annotation(cls: type, f: Field) -> Any:
    """The field's type, with its `choices` as a `Literal`."""
    hint = type_hints(cls)[f.name]
    choices = f.metadata.get("choices")
    if not choices:
        return hint
    literal = Literal[tuple(choices)]
    return literal | None if type(None) in typing.get_args(hint) else literal


def collect_options(scopes: dict[str, type], taken: set[str]) -> list[Option]:
    """The union of the scopes' options (dataclass fields) not in `taken`, in field order of the first scope
    holding each."""
    found: dict[str, dict[str, tuple[type, Field]]] = {}
    for scope, cls in scopes.items():
        for f in fields(cls):
            if f.name not in taken:
                found.setdefault(f.name, {})[scope] = (cls, f)
    options = []
    for name, per_scope in found.items():
        annotations = list(dict.fromkeys(option_annotation(cls, f) for cls, f in per_scope.values()))
        defaults = {scope: f.default for scope, (_, f) in per_scope.items()}
        same = len(per_scope) == len(scopes) and len({repr(d) for d in defaults.values()}) == 1
        first = next(iter(per_scope.values()))[1]
        options.append(
            Option(
                name,
                first.metadata["group"],
                functools.reduce(operator.or_, annotations),
                first.default if same else ScopedDefault(tuple(defaults.items())),
                {scope: f.metadata["help"] for scope, (_, f) in per_scope.items()},
            )
        )
    return options


def type_text(annotation: Any) -> str:
    """An annotation as the docstring shows it: `int | None`, `'sgd' | 'adam'` (a `Literal`)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in typing.get_args(annotation))
    if origin is Literal:
        return " | ".join(repr(arg) for arg in typing.get_args(annotation))
    return "None" if annotation is type(None) else getattr(annotation, "__name__", repr(annotation))


def options_section(options: list[Option], scopes: dict[str, type], command: str) -> str:
    """The docstring section listing each option (by help group) with its type, default and help."""
    intro = (
        f"Options: keywords named as the flags of `{command} --help` (in their YAML spelling); each value is checked "
        "and an unknown name is refused."
    )
    if len(scopes) > 1:
        intro += (
            " The options class depends on the arguments ("
            + "; ".join(f"{scope}: {cls.__name__}" for scope, cls in scopes.items())
            + "): an option that only some of them read, or whose default differs between them, names them after "
            "its default."
        )
    lines = ["", *textwrap.wrap(intro, 116)]
    groups = list(dict.fromkeys(g.title for cls in scopes.values() for g in cls.HELP_GROUPS))
    for group in groups:
        members = [o for o in options if o.group == group]
        if not members:
            continue
        lines += ["", f"{group} options:"]
        for option in members:
            lines.append(f"    {option.name}: {type_text(option.annotation)} = {option.default!r}")
            by_text = grouped(option.helps.items(), key=str)
            text = (
                next(iter(option.helps.values()))
                if len(by_text) == 1
                else "; ".join(f"{', '.join(scopes)}: {text}" for text, scopes in by_text.items())
            )
            lines += textwrap.wrap(text, 112, initial_indent=" " * 8, subsequent_indent=" " * 8)
    return "\n".join(lines) + "\n"


def with_options(scopes: dict[str, type], command: str) -> Callable[[Function], Function]:
    """Give an entry point taking `**options` the signature and docstring section of the options `scopes` name
    (scope label -> config dataclass); its own parameters keep their place and shadow options of their name."""

    def decorate(func: Function) -> Function:
        own = inspect.signature(func)
        kept = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        options = collect_options(scopes, {p.name for p in kept})
        keywords = [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation)
            for o in options
        ]
        func.__signature__ = own.replace(parameters=[*kept, *keywords])  # type: ignore[attr-defined]
        func.__doc__ = (inspect.getdoc(func) or "") + "\n" + options_section(options, scopes, command)
        return func

    return decorate


def passed(options: dict[str, Any]) -> dict[str, Any]:
    """The options a caller gave: a `ScopedDefault` passed back (as from a bound signature) is not one."""
    return {name: value for name, value in options.items() if not isinstance(value, ScopedDefault)}
