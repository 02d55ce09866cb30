"""`RunDir`: where a run writes its config, architecture, metrics, TensorBoard events and weights.

A run holds `RunLock`, an exclusive `flock` on `RUN_DIR/.lock` (with its PID in it), while it writes:
a second writer is refused with one line naming that PID. The kernel drops the lock when the
process ends, however it ends, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any

import yaml

from ..errors import HwnasError
from ..io import append_text, atomic_write_text, json_text, open_plain, read_plain_bytes
from ..readers import load_yaml
from .checkpoint import CheckpointStore
from .storage import writing

LOCK_NAME = ".lock"
HELD: dict[Path, RunLock] = {}  # the locks this process holds, by resolved run directory


class RunLock:
    """An exclusive lock on a run directory, released by `release()` or by the kernel when the process dies."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.file: IO[str] | None = None
        self.made_directory = False
        self.made_file = False

    @property
    def held(self) -> bool:
        return self.file is not None

    def acquire(self) -> None:
        """Take the lock (creating the directory); HwnasError naming the holder's PID if another process has it."""
        if self.directory.exists() and not self.directory.is_dir():
            raise HwnasError(f"--run-dir {self.directory}: is a file, not a directory")
        key = self.directory.resolve()
        earlier = HELD.get(key)
        if earlier is not None and earlier is not self:
            earlier.release()  # a run of this same process that ended without closing its directory
        self.made_directory = not self.directory.exists()
        with writing(self.path):
            self.directory.mkdir(parents=True, exist_ok=True)
            self.made_file = not self.path.exists()
            file = os.fdopen(open_plain(self.path, os.O_RDWR | os.O_CREAT, "run lock"), "r+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise HwnasError(
                f"run directory {self.directory} is in use by another hwnas process (PID {self.holder()}); "
                f"wait for it to end (or stop it), then continue with --resume {self.directory}"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        HELD[key] = self

    def holder(self) -> str:
        """The PID written in the lock file ('unknown' if it cannot be read)."""
        for _ in range(20):  # the holder writes its PID just after taking the lock
            try:
                pid = self.path.read_text().strip()
            except OSError:
                return "unknown"
            if pid:
                return pid
            time.sleep(0.01)
        return "unknown"

    def release(self) -> None:
        """Drop the lock; a directory this run created and left empty (but for the lock) is removed."""
        if self.file is None:
            return
        key = self.directory.resolve()
        if HELD.get(key) is self:
            del HELD[key]
        try:
            if self.made_file and [p.name for p in self.directory.iterdir()] == [LOCK_NAME]:
                self.path.unlink()
                if self.made_directory:
                    self.directory.rmdir()
        except OSError:
            pass
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        self.file.close()
        self.file = None


class RunDir:
    """`config.yaml`, `arch.json`, `metrics.jsonl`, `tb/`, `checkpoints/`, `model.pt` under one folder."""

    def __init__(self, path: str | Path, keep_checkpoints: int = 3, writer: bool = True) -> None:
        self.path = Path(path)
        self.checkpoints = CheckpointStore(self.path / "checkpoints", keep_checkpoints, writer=False)  # until locked
        self.writer = writer
        self.lock = RunLock(self.path)
        self._tb = None

    @staticmethod
    def default_path(command: str, name: str) -> Path:
        return Path("runs") / f"{command}-{Path(name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def acquire(self) -> None:
        """Lock the directory for this run (a writer only: under torchrun, rank 0)."""
        if self.writer:
            self.lock.acquire()
            self.checkpoints.writer = True

    def hint(self) -> str:
        """How to go on after a failed write: --resume only when a checkpoint exists to resume from."""
        return self.checkpoints.resume_hint()

    def write_config(self, config: dict[str, Any]) -> None:
        if self.writer:
            with writing(self.config_path, self.hint()):
                atomic_write_text(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return load_yaml(self.config_path, "run config") or {}

    def write_text(self, name: str, text: str) -> None:
        if self.writer:
            with writing(self.path / name, self.hint()):
                atomic_write_text(self.path / name, text)

    def write_json(self, name: str, value: Any) -> None:
        """Write `value` as strict JSON (a NaN or infinity becomes null)."""
        self.write_text(name, json_text(value, indent=1))

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl and its numbers to TensorBoard (tag kind/key)."""
        if not self.writer:
            return
        with writing(self.path / "metrics.jsonl", self.hint()):
            self.path.mkdir(parents=True, exist_ok=True)
            append_text(self.path / "metrics.jsonl", json_text(record) + "\n", "metrics file")
        with writing(self.path / "tb", self.hint()):
            self._log_tensorboard(record)

    def _log_tensorboard(self, record: dict[str, Any]) -> None:
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
        for line in read_plain_bytes(path, "metrics file").decode(errors="replace").splitlines():
            try:
                record = json.loads(line)
                if record.get("step", 0) <= step:
                    kept.append(json_text(record))
            except (ValueError, AttributeError):  # a line cut short by the interruption
                continue
        with writing(path, self.hint()):
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def close(self) -> None:
        """Close TensorBoard's writer and release the directory's lock."""
        try:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        except OSError:
            self._tb = None
        finally:
            self.lock.release()
            self.checkpoints.writer = False
