"""`Architecture`: one concrete choice per searchable layer of a space, as a versioned JSON file.

    {"format": "hwnas.arch/1", "space": "fbnet",
     "space_args": {"input_size": [3, 224, 224], "num_classes": 1000},
     "choices": ["ir_k3_e1", "ir_k3_e6", "skip", ...], "meta": {...}, "pretrained_cfg": {...}}

A cell space (DARTS, CNAS) holds a `"genotype"` instead of `"choices"` (see `spaces.genotype`). The optional
`"pretrained_cfg"` records how the inputs the network was trained on were made (see `hwnas.pretrained_cfg`).

Loading validates everything before anything is built; every failure is one `ArchError`
line naming the file, the field, the value and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import zoo
from .blocks import parse_op
from .errors import ArchError, HwnasError
from .io import atomic_write_text, json_text
from .pretrained_cfg import PretrainedCfg
from .readers import load_json
from .spaces import CellSpaceSpec, Genotype, SpaceSpec, load_space

FORMAT = "hwnas.arch/1"
FIELDS = ("format", "space", "space_args", "choices", "genotype", "meta", "pretrained_cfg")


@dataclass(frozen=True)
class Architecture:
    """A validated architecture; `spec` is its space resolved with `space_args`.

    Layer-wise spaces fill `choices`; cell spaces fill `genotype` (and leave `choices` empty).
    Make one with `load`, `from_dict`, `from_space` or `from_genotype`, which validate; never half-built.
    """

    space: str
    choices: tuple[str, ...]
    space_args: dict[str, Any]
    meta: dict[str, Any]
    spec: SpaceSpec | CellSpaceSpec = field(repr=False, compare=False)
    genotype: Genotype | None = None
    pretrained_cfg: PretrainedCfg | None = None  # how the training inputs were made; None: not recorded

    @property
    def is_cell(self) -> bool:
        return self.genotype is not None

    @classmethod
    def from_space(
        cls,
        spec: SpaceSpec,
        choices: list[str],
        meta: dict[str, Any] | None = None,
        pretrained_cfg: PretrainedCfg | None = None,
    ) -> Architecture:
        """The architecture that picks `choices` in an already resolved space."""
        data = {"format": FORMAT, "space": spec.origin, "space_args": spec.knob_overrides(), "choices": list(choices)}
        return cls.from_dict({**data, "meta": dict(meta or {}), **_cfg_field(pretrained_cfg)})

    @classmethod
    def from_genotype(
        cls,
        spec: CellSpaceSpec,
        genotype: Genotype,
        meta: dict[str, Any] | None = None,
        pretrained_cfg: PretrainedCfg | None = None,
    ) -> Architecture:
        """The architecture of `genotype`'s cells in an already resolved cell space."""
        data = {"format": FORMAT, "space": spec.origin, "space_args": spec.knob_overrides()}
        return cls.from_dict(
            {**data, "genotype": genotype.to_dict(), "meta": dict(meta or {}), **_cfg_field(pretrained_cfg)}
        )

    @classmethod
    def from_dict(cls, data: Any, where: str = "architecture", base_dir: Path | None = None) -> Architecture:
        """Validate a decoded architecture file field by field; raise one ArchError line on the first fault."""
        if not isinstance(data, dict):
            raise ArchError(
                f"{where}: got a JSON {type(data).__name__}, expected an object with fields {', '.join(FIELDS)}"
            )
        unknown = [k for k in data if k not in FIELDS]
        if unknown:
            raise ArchError(f"{where}: unknown field {unknown[0]!r}; expected only {', '.join(FIELDS)}")
        if data.get("format") != FORMAT:
            raise ArchError(f"{where}: format: got {data.get('format')!r}, expected {FORMAT!r}")
        space = data.get("space")
        if not isinstance(space, str) or not space:
            raise ArchError(f"{where}: space: got {space!r}, expected a built-in space name or a space YAML path")
        if base_dir is not None and space.endswith((".yaml", ".yml")) and not os.path.isabs(space):
            space = str(base_dir / space)
        space_args = data.get("space_args", {})
        if not isinstance(space_args, dict):
            raise ArchError(f"{where}: space_args: got {space_args!r}, expected an object of knob values")
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise ArchError(f"{where}: meta: got {meta!r}, expected an object")
        spec = _resolve(space, space_args, where)
        pretrained_cfg = _pretrained_cfg(data.get("pretrained_cfg"), spec, where)
        if spec.kind == "cell":
            if "choices" in data:
                raise ArchError(f"{where}: choices: {spec.name} is a cell space; expected a genotype instead")
            genotype = Genotype.from_dict(data.get("genotype"), spec.ops, f"{where}: genotype")
            if spec.shared_cells and genotype.reduce != genotype.normal:
                raise ArchError(
                    f"{where}: genotype: space {spec.name} repeats the normal cell in its reduction cells "
                    "(shared_cells); expected reduce equal to normal"
                )
            return cls(space, (), dict(space_args), dict(meta), spec, genotype, pretrained_cfg)
        if "genotype" in data:
            raise ArchError(f"{where}: genotype: {spec.name} is a layer-wise space; expected choices instead")
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise ArchError(
                f"{where}: choices: got {choices!r}, "
                f"expected a list of {spec.num_layers} op names (one per searchable layer)"
            )
        _check_choices(choices, spec, where)
        return cls(space, tuple(choices), dict(space_args), dict(meta), spec, pretrained_cfg=pretrained_cfg)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Architecture:
        path = Path(path)
        try:
            data = load_json(path, "architecture file")  # UTF-8, bounded in size, depth and number length
        except ArchError:
            raise
        except HwnasError as exc:
            raise ArchError(str(exc)) from None
        return cls.from_dict(data, str(path), path.parent)

    @classmethod
    def from_zoo(cls, name: str) -> Architecture:
        """The published architecture `name` of the zoo (`hwnas zoo` lists them)."""
        if name not in zoo.names():
            raise ArchError(f"zoo model {name!r} does not exist; expected one of {', '.join(zoo.names())}")
        return cls.load(zoo.path(name))

    def with_space_args(self, **knobs: Any) -> Architecture:
        """The same choices in the space resolved with some knobs changed (e.g. input_size). A recorded
        `pretrained_cfg` follows a new input size; it is dropped when the input channels or classes change."""
        data = {k: v for k, v in self.to_dict().items() if k != "pretrained_cfg"}
        changed = Architecture.from_dict({**data, "space_args": {**self.space_args, **knobs}})
        if self.pretrained_cfg is None:
            return changed
        return changed.with_pretrained_cfg(
            self.pretrained_cfg.refit(changed.spec.input_size, changed.spec.knobs["num_classes"])
        )

    def with_pretrained_cfg(self, pretrained_cfg: PretrainedCfg | None) -> Architecture:
        """The same architecture recording `pretrained_cfg` (None: none), checked against its input size and classes."""
        data = {k: v for k, v in self.to_dict().items() if k != "pretrained_cfg"}
        return Architecture.from_dict({**data, **_cfg_field(pretrained_cfg)})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT, "space": self.space, "space_args": self.space_args}
        data.update(self.structure())
        if self.meta:
            data["meta"] = self.meta
        data.update(_cfg_field(self.pretrained_cfg))
        return data

    def structure(self) -> dict[str, Any]:
        """What was chosen, without space or meta: `{"choices": [...]}` or `{"genotype": {...}}`."""
        if self.genotype is not None:
            return {"genotype": self.genotype.to_dict()}
        return {"choices": list(self.choices)}

    def to_json(self, folder: str | os.PathLike[str] | None = None) -> str:
        """The file's text for a file in `folder`: a space YAML path is written relative to that folder, where
        loading looks for it (None: as it is)."""
        data = self.to_dict()
        if folder is not None and self.space.endswith((".yaml", ".yml")):
            data["space"] = os.path.relpath(os.path.abspath(self.space), os.path.abspath(folder))
        return json_text(data, indent=2) + "\n"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically (temporary file, then rename)."""
        return atomic_write_text(path, self.to_json(Path(path).parent))


def _resolve(space: str, space_args: dict[str, Any], where: str) -> SpaceSpec | CellSpaceSpec:
    try:
        return load_space(space, **space_args)
    except HwnasError as exc:
        raise ArchError(f"{where}: {exc}") from None


def _cfg_field(pretrained_cfg: PretrainedCfg | None) -> dict[str, Any]:
    """The file's `pretrained_cfg` entry: {} when none is recorded."""
    return {} if pretrained_cfg is None else {"pretrained_cfg": pretrained_cfg.to_dict()}


def _pretrained_cfg(data: Any, spec: SpaceSpec | CellSpaceSpec, where: str) -> PretrainedCfg | None:
    """The file's validated `pretrained_cfg` (None when absent); it must describe this network's input and classes."""
    if data is None:
        return None
    try:
        cfg = PretrainedCfg.from_dict(data, f"{where}: pretrained_cfg")
        cfg.check_fits(spec.input_size, spec.knobs["num_classes"], f"{where}: pretrained_cfg")
    except HwnasError as exc:
        raise ArchError(str(exc)) from None
    return cfg


def _check_choices(choices: Any, spec: SpaceSpec, where: str) -> None:
    if len(choices) != spec.num_layers:
        raise ArchError(
            f"{where}: choices: got {len(choices)} entries, "
            f"expected {spec.num_layers} (one per searchable layer of {spec.name})"
        )
    for i, (op, layer) in enumerate(zip(choices, spec.layers, strict=True)):
        try:
            parse_op(op)
        except HwnasError as exc:
            raise ArchError(f"{where}: choices[{i}]: {exc}") from None
        if op not in layer.candidates:
            raise ArchError(
                f"{where}: choices[{i}]: {op!r} is not allowed at layer {i} "
                f"({layer.c_in}->{layer.c_out}, stride {layer.stride}); expected one of {', '.join(layer.candidates)}"
            )


def resolve_arch(arch: Architecture | str | os.PathLike[str]) -> Architecture:
    """An `Architecture` from itself, a zoo name, or an architecture file path."""
    if isinstance(arch, Architecture):
        return arch
    name = str(arch)
    if name in zoo.names():
        return Architecture.from_zoo(name)
    if Path(name).is_file():
        return Architecture.load(name)
    raise ArchError(f"architecture {name!r} is neither a zoo model ({', '.join(zoo.names())}) nor a file")
