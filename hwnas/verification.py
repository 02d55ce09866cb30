"""Face verification on LFW-style pairs: read `pairs.txt`, score embedding pairs, report the LFW protocol.

Pairs-file rules (`read_pairs`):
- blank lines are skipped; line numbers in errors are the file's own, from 1;
- an optional header is the first non-blank line when it holds one or two integers: `FOLDS PER_FOLD`
  (LFW's `pairs.txt`, e.g. `10 300`) or `PER_FOLD` alone (LFW's `pairsDevTrain.txt`, one fold);
  the file must then hold exactly FOLDS × 2 × PER_FOLD pair lines;
- without a header all pair lines form one fold;
- a pair line is `NAME I J` (same person) or `NAME1 I NAME2 J` (different people), split on tabs or
  spaces, with 1-based image numbers resolved as `ROOT/NAME/NAME_{I:04d}{SUFFIX}`;
- fold k is the k-th block of 2 × PER_FOLD lines in file order (LFW puts PER_FOLD matched lines then
  PER_FOLD mismatched ones in each block; that order inside a block is not checked).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from .errors import HwnasError

FAR_TARGET = 1e-3
INTEGER = re.compile(r"[+-]?[0-9]+")


def _header(fields: list[str]) -> tuple[int, int] | None:
    """(folds, per_fold) when `fields` is a header line of one or two integers, else None."""
    if len(fields) not in (1, 2) or not all(INTEGER.fullmatch(f) for f in fields):
        return None
    numbers = [int(f) for f in fields]
    return (1, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])


def _resolve(root: Path, name: str, index: str, suffixes: tuple[str, ...], where: str) -> Path:
    if not INTEGER.fullmatch(index):
        raise HwnasError(f"{where}: image index {index!r} of {name!r} is not an integer; expected 1, 2, ...")
    number = int(index)
    if number < 1:
        raise HwnasError(
            f"{where}: image index {index!r} of {name!r} is not a 1-based image number; expected 1, 2, ..."
        )
    stem = root / name / f"{name}_{number:04d}"
    for suffix in suffixes:
        path = stem.with_name(stem.name + suffix)
        if path.is_file():
            return path
    tried = stem.with_name(stem.name + suffixes[0])
    others = f" (and {', '.join(suffixes[1:])})" if len(suffixes) > 1 else ""
    raise HwnasError(f"{where}: image {number} of {name!r} not found: tried {tried}{others}")


def read_pairs(
    path: str | os.PathLike[str], root: str | os.PathLike[str], suffixes: tuple[str, ...] = (".png", ".jpg", ".jpeg")
) -> tuple[list[tuple[Path, Path]], np.ndarray, int]:
    """Parse an LFW pairs file into image path pairs, a bool `same` per pair, and the number of folds.

    See the module docstring for the accepted layout. Pairs come back in file order, so fold k is
    the k-th of `folds` equal contiguous blocks.
    """
    path, root = Path(path), Path(root)
    if not suffixes:
        raise HwnasError("read_pairs: no image suffixes given; expected e.g. ('.png', '.jpg')")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise HwnasError(f"{path}: cannot read the pairs file ({exc})") from None
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    header = _header(rows[0][1]) if rows else None
    header_line = rows[0] if header else None
    if header:
        rows = rows[1:]
    pairs: list[tuple[Path, Path]] = []
    same: list[bool] = []
    for n, fields in rows:
        where = f"{path}:{n}"
        if len(fields) == 3:
            name, i, j = fields
            pairs.append((_resolve(root, name, i, suffixes, where), _resolve(root, name, j, suffixes, where)))
            same.append(True)
        elif len(fields) == 4:
            first, i, second, j = fields
            pairs.append((_resolve(root, first, i, suffixes, where), _resolve(root, second, j, suffixes, where)))
            same.append(False)
        else:
            raise HwnasError(f"{where}: {len(fields)} fields {fields}; expected 3 (NAME I J) or 4 (NAME1 I NAME2 J)")
    if header and header_line:
        folds, per_fold = header
        expected = folds * 2 * per_fold
        if folds < 1 or per_fold < 1 or len(pairs) != expected:
            raise HwnasError(
                f"{path}:{header_line[0]}: header {' '.join(header_line[1])!r} means {folds} folds × 2 × "
                f"{per_fold} = {expected} pair lines, but the file has {len(pairs)}"
            )
    else:
        folds = 1
    if not pairs:
        raise HwnasError(f"{path}: no pair lines; expected NAME I J or NAME1 I NAME2 J lines")
    return pairs, np.array(same, dtype=bool), folds


def _as_matrix(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    return x[None] if x.ndim == 1 else x


def cosine_scores(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Row-wise cosine similarity of two N × D embedding batches (a zero row scores 0)."""
    a, b = _as_matrix(a), _as_matrix(b)
    if a.ndim != 2 or a.shape != b.shape:
        raise HwnasError(f"embedding batches of shapes {a.shape} and {b.shape}; expected two equal N × D shapes")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("nd,nd->n", a, b) / np.maximum(norms, np.finfo(np.float64).tiny)


def _best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The candidate threshold with the highest accuracy on these pairs; ties go to the lowest.

    Candidates: midpoints of consecutive sorted unique scores, plus one end below the lowest score
    (accept all) and one above the highest (reject all), each half the mean spacing away.
    """
    unique = np.unique(scores)
    pad = (unique[-1] - unique[0]) / (2 * (len(unique) - 1)) if len(unique) > 1 else 0.5
    candidates = np.concatenate([[unique[0] - pad], (unique[1:] + unique[:-1]) / 2, [unique[-1] + pad]])
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    accepted_genuine = len(genuine) - np.searchsorted(genuine, candidates, side="right")  # score > t
    rejected_impostor = np.searchsorted(impostor, candidates, side="right")  # score <= t
    return float(candidates[np.argmax(accepted_genuine + rejected_impostor)])


def _accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores > threshold) == same) * 100)


def verification_report(scores: np.ndarray | torch.Tensor, same: np.ndarray, folds: int = 10) -> dict:
    """The LFW protocol over pairs in fold order (fold k = k-th of `folds` contiguous blocks, as `read_pairs`).

    Higher scores mean more similar; a pair is accepted when its score > threshold. For each fold the
    threshold maximising accuracy on the other folds is applied to it (`_best_threshold`); with
    folds=1 it is chosen on that same fold, which flatters the accuracy (`threshold_on` says which).
    `accuracy` is the mean held-out accuracy in percent, `accuracy_std` its population standard
    deviation over folds, `threshold` the mean chosen threshold.

    `tar_at_far_1e-3` is the fraction of same pairs accepted at `far_threshold`, the smallest score
    with at most a 1e-3 fraction of ALL different pairs strictly above it, i.e. the (k+1)-th highest
    impostor score for k = floor(impostors / 1000). With fewer than 1000 different pairs, k = 0: the
    threshold is the highest impostor score and no impostor is accepted.
    """
    scores = _as_matrix(scores).reshape(-1)
    same = np.asarray(same, dtype=bool).reshape(-1)
    if len(scores) != len(same):
        raise HwnasError(f"{len(scores)} scores for {len(same)} same/different labels; expected one score per pair")
    if not 1 <= folds <= len(scores):
        raise HwnasError(f"folds={folds} for {len(scores)} pairs; expected 1 to {len(scores)} folds")
    if same.all() or not same.any():
        raise HwnasError(f"{len(scores)} pairs all {'same' if same.all() else 'different'}; expected both kinds")
    blocks = np.array_split(np.arange(len(scores)), folds)
    thresholds, accuracies = [], []
    for k, held_out in enumerate(blocks):
        chosen_on = held_out if folds == 1 else np.concatenate([b for j, b in enumerate(blocks) if j != k])
        threshold = _best_threshold(scores[chosen_on], same[chosen_on])
        thresholds.append(threshold)
        accuracies.append(_accuracy(scores[held_out], same[held_out], threshold))

    impostor = np.sort(scores[~same])[::-1]
    allowed = len(impostor) // round(1 / FAR_TARGET)  # impostors that may score above the threshold
    far_threshold = float(impostor[allowed])
    return {
        "accuracy": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "threshold": float(np.mean(thresholds)),
        "threshold_on": "same fold" if folds == 1 else "other folds",
        "fold_accuracy": accuracies,
        "tar_at_far_1e-3": float(np.mean(scores[same] > far_threshold)),
        "far_threshold": far_threshold,
        "pairs": len(scores),
        "folds": folds,
    }
