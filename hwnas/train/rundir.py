"""`RunDir`: where a run writes its config, architecture, metrics, TensorBoard events and weights."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from ..io import atomic_write_text
from .checkpoint import CheckpointStore


class RunDir:
    """`config.yaml`, `arch.json`, `metrics.jsonl`, `tb/`, `checkpoints/`, `model.pt` under one folder."""

    def __init__(self, path: str | Path, keep_checkpoints: int = 3, writer: bool = True) -> None:
        self.path = Path(path)
        self.checkpoints = CheckpointStore(self.path / "checkpoints", keep_checkpoints)
        self.writer = writer
        self._tb = None

    @staticmethod
    def default_path(command: str, name: str) -> Path:
        return Path("runs") / f"{command}-{Path(name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def write_config(self, config: dict[str, Any]) -> None:
        if self.writer:
            atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_path.read_text()) or {}

    def write_text(self, name: str, text: str) -> None:
        if self.writer:
            atomic_write_text(self.path / name, text)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl and its numbers to TensorBoard (tag kind/key)."""
        if not self.writer:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.path / "tb"))
        step = record.get("step", 0)
        for key, value in record.items():
            tag = f"{record.get('kind', 'run')}/{key}"
            if key not in ("kind", "step") and isinstance(value, int | float) and not isinstance(value, bool):
                self._tb.add_scalar(tag, value, step)
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                self._tb.add_text(tag, " ".join(value), step)
        self._tb.flush()

    def truncate_metrics(self, step: int) -> None:
        """Drop records after `step` (a resumed run writes them again)."""
        path = self.path / "metrics.jsonl"
        if not self.writer or not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:  # a line cut short by the interruption
                continue
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
