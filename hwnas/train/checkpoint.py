"""Checkpoints: atomic writes, a hashed index, keep-last-N plus best, fall back past corrupt files."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..errors import HwnasError
from ..io import atomic_write, atomic_write_text

FORMAT = "hwnas.checkpoint/1"


def _read_index(directory: Path) -> dict[str, Any]:
    try:
        index = json.loads((directory / "index.json").read_text())
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        return {}


class CheckpointStore:
    """`directory/epoch_003.pt`, `epoch_003_step_0000400.pt`, `best.pt`, and `index.json` with their sha256.

    A file is listed in the index only after it is completely on disk, so a crash mid-write
    leaves the previous checkpoints untouched; a listed file whose hash no longer matches is
    reported and skipped.
    """

    def __init__(self, directory: str | Path, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.keep = keep

    def save(self, state: dict[str, Any], name: str, best: bool = False) -> Path:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **state}, buffer)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        path = atomic_write(self.directory / name, lambda f: f.write(data))
        entry = {
            "file": name,
            "sha256": digest,
            "epoch": state.get("epoch"),
            "batch": state.get("batch"),
            "step": state.get("step"),
        }
        index = _read_index(self.directory)
        listed = [e for e in index.get("checkpoints", []) if e.get("file") != name] + [entry]
        dropped, listed = listed[: -self.keep], listed[-self.keep :]
        index["checkpoints"] = listed
        if best:
            atomic_write(self.directory / "best.pt", lambda f: f.write(data))
            index["best"] = {**entry, "file": "best.pt"}
        atomic_write_text(self.directory / "index.json", json.dumps(index, indent=1))
        for old in dropped:
            (self.directory / old["file"]).unlink(missing_ok=True)
        return path

    def entries(self) -> list[dict[str, Any]]:
        return list(_read_index(self.directory).get("checkpoints", []))

    def load(self, path: str | Path) -> dict[str, Any]:
        """Load one checkpoint, checking its hash when the index lists it; HwnasError if it is damaged."""
        path = Path(path)
        listed = {e["file"]: e["sha256"] for e in self.entries()}
        best = _read_index(self.directory).get("best")
        if best:
            listed["best.pt"] = best["sha256"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HwnasError(f"checkpoint {path}: cannot read ({exc.strerror})") from None
        expected = listed.get(path.name) if path.parent.resolve() == self.directory.resolve() else None
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise HwnasError(f"checkpoint {path}: corrupted (sha256 differs from the one recorded when it was written)")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for damaged zips and pickles
            raise HwnasError(
                f"checkpoint {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise HwnasError(f"checkpoint {path}: not an hwnas checkpoint (expected format {FORMAT})")
        return state

    def load_latest(self, upto: str | None = None) -> tuple[Path, dict[str, Any]] | None:
        """The newest good checkpoint (or `upto` and older ones), reporting each damaged one skipped."""
        entries = self.entries()
        if upto is not None:
            names = [e["file"] for e in entries]
            entries = entries[: names.index(upto) + 1] if upto in names else []
        for entry in reversed(entries):
            path = self.directory / entry["file"]
            try:
                return path, self.load(path)
            except HwnasError as exc:
                print(f"hwnas: warning: {exc}; trying the previous checkpoint", file=sys.stderr)
        return None
