"""Checkpoints: atomic writes, a hashed index, keep-last-N plus best, fall back past corrupt files."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import HwnasError
from ..io import atomic_write, atomic_write_text, json_text, read_plain_bytes
from .storage import writing

FORMAT = "hwnas.checkpoint/1"
CHECKPOINT_NAME = re.compile(r"epoch_\d+(_step_\d+)?\.pt")

logger = logging.getLogger(__name__)


def read_index(directory: Path) -> dict[str, Any] | None:
    """`directory/index.json`, or None when it is missing or unreadable."""
    try:
        index = json.loads(read_plain_bytes(directory / "index.json", "checkpoint index"))
    except (OSError, ValueError, HwnasError):
        return None
    return index if isinstance(index, dict) else None


def parse_checkpoint(path: Path, data: bytes) -> dict[str, Any]:
    """The state a checkpoint's bytes hold; HwnasError if they are not an hwnas checkpoint."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for damaged zips and pickles
        raise HwnasError(
            f"checkpoint {path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise HwnasError(f"checkpoint {path}: not an hwnas checkpoint (expected format {FORMAT})")
    return state


def index_entry(name: str, data: bytes, state: dict[str, Any]) -> dict[str, Any]:
    """The index's record of one checkpoint file."""
    return {
        "file": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "epoch": state.get("epoch"),
        "batch": state.get("batch"),
        "step": state.get("step"),
    }


class CheckpointStore:
    """`directory/epoch_003.pt`, `epoch_003_step_0000400.pt`, `best.pt`, and `index.json` with their sha256.

    A file is listed in the index only after it is completely on disk, so a crash mid-write
    leaves the previous checkpoints untouched; a listed file whose hash no longer matches is
    reported and skipped. A lost or unreadable index is rebuilt from the files that load.
    Only a `writer` (the process holding the run directory's lock) writes a rebuilt index back.
    """

    def __init__(self, directory: str | Path, keep: int = 3, writer: bool = True) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.writer = writer
        self.rebuilt: dict[str, Any] | None = None

    def resume_hint(self) -> str:
        """What is kept and how to go on, for a message about a failed write."""
        entries = self.entries() if self.directory.is_dir() else []
        if not entries:
            return "; no checkpoint was written yet: free space, then start the run again"
        kept = f"the last good checkpoint, {entries[-1]['file']}, is kept"
        return f"; {kept}: free space, then continue with --resume {self.directory.parent}"

    def save(self, state: dict[str, Any], name: str, best: bool = False) -> Path:
        hint = self.resume_hint()
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **state}, buffer)
        data = buffer.getvalue()
        entry = index_entry(name, data, state)
        index = self.index()  # before the new file is on disk, which the index does not list yet
        with writing(self.directory / name, hint):
            path = atomic_write(self.directory / name, lambda f: f.write(data))
        listed = [e for e in index.get("checkpoints", []) if e.get("file") != name] + [entry]
        dropped, listed = listed[: -self.keep], listed[-self.keep :]
        index["checkpoints"] = listed
        if best:
            with writing(self.directory / "best.pt", hint):
                atomic_write(self.directory / "best.pt", lambda f: f.write(data))
            index["best"] = {**entry, "file": "best.pt"}
        with writing(self.directory / "index.json", hint):
            atomic_write_text(self.directory / "index.json", json_text(index, indent=1))
        self.rebuilt = None
        for old in dropped:
            (self.directory / old["file"]).unlink(missing_ok=True)
        return path

    def index(self) -> dict[str, Any]:
        """The index on disk, else one rebuilt from the checkpoint files that load (written back by a writer)."""
        index = read_index(self.directory)
        if index is not None:
            return index
        if self.rebuilt is None:
            rebuilt = self.rebuild()
            if not rebuilt:
                return {}
            self.rebuilt = rebuilt
        return copy.deepcopy(self.rebuilt)

    def rebuild(self) -> dict[str, Any]:
        """An index of the checkpoint files in the directory that load (none: {}), reported and written back."""
        files = sorted(p for p in self.directory.glob("epoch_*.pt") if CHECKPOINT_NAME.fullmatch(p.name))
        best = self.directory / "best.pt"
        if not files and not best.is_file():
            return {}
        found = [e for e in (self.verified_entry(p) for p in files) if e is not None]
        found.sort(key=lambda e: (e["step"] if isinstance(e["step"], int) else -1, e["file"]))
        index: dict[str, Any] = {"checkpoints": found}
        best_entry = self.verified_entry(best) if best.is_file() else None
        if best_entry is not None:
            index["best"] = best_entry
        if self.writer:
            self.report_rebuilt(found, len(files))
            try:
                atomic_write_text(self.directory / "index.json", json_text(index, indent=1))
            except OSError as exc:
                logger.warning("hwnas: warning: cannot write the rebuilt index (%s); using it unsaved", exc.strerror)
        return index

    def report_rebuilt(self, found: list[dict[str, Any]], files: int) -> None:
        names = ", ".join(e["file"] for e in found) or "none"
        logger.warning(
            "hwnas: warning: %s was missing or unreadable; rebuilt it from the %d of %d checkpoint file(s) "
            "that load (%s)",
            self.directory / "index.json",
            len(found),
            files,
            names,
        )

    def verified_entry(self, path: Path) -> dict[str, Any] | None:
        """The index record of `path` if it loads as an hwnas checkpoint, else None (reported)."""
        try:
            data = read_plain_bytes(path, "checkpoint")
            return index_entry(path.name, data, parse_checkpoint(path, data))
        except OSError as exc:
            logger.warning("hwnas: warning: checkpoint %s: cannot read (%s); left out", path, exc.strerror)
        except HwnasError as exc:
            logger.warning("hwnas: warning: %s; left out", exc)
        return None

    def entries(self) -> list[dict[str, Any]]:
        listed = self.index().get("checkpoints", [])
        return (
            [e for e in listed if isinstance(e, dict) and CHECKPOINT_NAME.fullmatch(str(e.get("file")))]
            if isinstance(listed, list)
            else []
        )

    def load(self, path: str | Path) -> dict[str, Any]:
        """Load one checkpoint, checking its hash when the index lists it; HwnasError if it is damaged."""
        path = Path(path)
        listed = {e["file"]: e.get("sha256") for e in self.entries()}
        best = self.index().get("best")
        if isinstance(best, dict):
            listed["best.pt"] = best.get("sha256")
        try:
            data = read_plain_bytes(path, "checkpoint")
        except OSError as exc:
            raise HwnasError(f"checkpoint {path}: cannot read ({exc.strerror})") from None
        expected = listed.get(path.name) if path.parent.resolve() == self.directory.resolve() else None
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise HwnasError(f"checkpoint {path}: corrupted (sha256 differs from the one recorded when it was written)")
        return parse_checkpoint(path, data)

    def load_latest(self, upto: str | None = None) -> tuple[Path, dict[str, Any]] | None:
        """The newest good checkpoint (or `upto` and older ones), reporting each damaged one skipped."""
        entries = self.entries()
        if upto is not None:  # the checkpoint asked for: used or refused, never swapped for an older one
            if upto not in [e["file"] for e in entries]:
                return None
            path = self.directory / upto
            return path, self.load(path)
        for entry in reversed(entries):
            path = self.directory / entry["file"]
            try:
                return path, self.load(path)
            except HwnasError as exc:
                logger.warning(f"hwnas: warning: {exc}; trying the previous checkpoint")
        return None
