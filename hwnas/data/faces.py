"""A small synthetic face-like identity set and an LFW-format `pairs.txt` for it (tests and quickstarts).

`write_identities` lays images out as LFW does (`root/person_000/person_000_0001.png`, one folder per
person), so the set opens as `folder:ROOT` for identity-classification training, and `write_pairs`
writes verification pairs over it in LFW's `pairs.txt` format for `hwnas.verification.read_pairs`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import HwnasError
from ..io import atomic_write_text

SUPERSAMPLE = 3  # faces are drawn this many times larger, then downsampled for smooth edges
SKIN_LIGHT, SKIN_DARK = np.array([238, 204, 178]), np.array([92, 58, 40])
HAIR = np.array([[22, 18, 16], [70, 45, 28], [120, 80, 45], [205, 170, 105], [150, 60, 30], [160, 160, 160]])
IRIS = np.array([[70, 40, 20], [60, 110, 170], [70, 120, 70], [130, 100, 50], [110, 120, 130]])
IMAGE_NAME = re.compile(r"^(?P<name>.+)_(?P<index>\d{4})\.(?:png|jpg|jpeg)$", re.IGNORECASE)


@dataclass(frozen=True)
class Face:
    """One identity's fixed traits; lengths are fractions of the image size, colours RGB."""

    skin: np.ndarray
    hair: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    width: float  # face ellipse
    height: float
    hair_drop: float  # how far down the sides the hair reaches, as a fraction of the face height
    eye_spacing: float  # distance between eye centres, fraction of the face width
    eye_height: float  # eye line, fraction of the face height from its top
    eye_size: float
    brow_tilt: float
    nose_length: float
    mouth_width: float  # fraction of the face width
    mouth_height: float
    mouth_y: float  # fraction of the face height from its top


def _face(seed: int, identity: int) -> Face:
    rng = np.random.default_rng([seed, identity, 0])
    skin = SKIN_LIGHT + rng.uniform(0, 1) * (SKIN_DARK - SKIN_LIGHT) + rng.normal(0, 6, 3)
    return Face(
        skin=skin,
        hair=HAIR[rng.integers(len(HAIR))] + rng.normal(0, 10, 3),
        iris=IRIS[rng.integers(len(IRIS))] + rng.normal(0, 10, 3),
        lips=skin * np.array([0.85, 0.55, 0.55]) + np.array([30, 0, 0]),
        width=rng.uniform(0.46, 0.60),
        height=rng.uniform(0.60, 0.76),
        hair_drop=rng.uniform(0.12, 0.6),
        eye_spacing=rng.uniform(0.30, 0.46),
        eye_height=rng.uniform(0.36, 0.48),
        eye_size=rng.uniform(0.045, 0.07),
        brow_tilt=rng.uniform(-0.02, 0.03),
        nose_length=rng.uniform(0.10, 0.20),
        mouth_width=rng.uniform(0.26, 0.48),
        mouth_height=rng.uniform(0.025, 0.06),
        mouth_y=rng.uniform(0.72, 0.80),
    )


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = np.clip(np.round(colour), 0, 255).astype(int).tolist()
    return r, g, b


def _draw(face: Face, size: int, rng: np.random.Generator) -> Image.Image:
    """One photo of `face`: jittered pose, scale, expression and lighting, plus pixel noise."""
    big = size * SUPERSAMPLE
    scale = rng.uniform(0.93, 1.07) * big
    cx = big * (0.5 + rng.uniform(-0.04, 0.04))
    cy = big * (0.52 + rng.uniform(-0.04, 0.04))
    w, h = face.width * scale, face.height * scale
    top = cy - h / 2
    background = np.array([150, 160, 175]) + rng.normal(0, 8, 3)
    image = Image.new("RGB", (big, big), _rgb(background))
    draw = ImageDraw.Draw(image)

    # hair behind the head, then ears, face, and the hair band over the forehead
    pad = 0.06 * scale
    draw.ellipse((cx - w / 2 - pad, top - pad, cx + w / 2 + pad, top + h * face.hair_drop + h / 2), _rgb(face.hair))
    ear_w, ear_h = 0.06 * scale, 0.14 * scale
    for side in (-1, 1):
        ex = cx + side * w / 2
        draw.ellipse((ex - ear_w, cy - ear_h, ex + ear_w, cy + ear_h * 0.6), _rgb(face.skin * 0.92))
    draw.ellipse((cx - w / 2, top, cx + w / 2, top + h), _rgb(face.skin))
    draw.chord((cx - w / 2, top, cx + w / 2, top + h * 0.55), 180, 360, _rgb(face.hair))

    # eyes (sclera, iris, pupil) with eyebrows; the eye openness varies a little per photo
    eye_y = top + face.eye_height * h
    eye_r = face.eye_size * scale
    openness = rng.uniform(0.6, 1.0)
    for side in (-1, 1):
        ex = cx + side * face.eye_spacing * w / 2
        draw.ellipse((ex - eye_r * 1.5, eye_y - eye_r * openness, ex + eye_r * 1.5, eye_y + eye_r * openness), "white")
        iris_r = eye_r * 0.8 * openness
        draw.ellipse((ex - iris_r, eye_y - iris_r, ex + iris_r, eye_y + iris_r), _rgb(face.iris))
        draw.ellipse((ex - iris_r / 2.5, eye_y - iris_r / 2.5, ex + iris_r / 2.5, eye_y + iris_r / 2.5), "black")
        brow_y = eye_y - eye_r * 2.0
        inner, outer = ex - side * eye_r * 1.4, ex + side * eye_r * 1.6
        tilt = face.brow_tilt * scale
        draw.line((inner, brow_y + tilt, outer, brow_y - tilt), _rgb(face.hair * 0.8), width=max(1, round(eye_r / 2)))

    # nose shadow and mouth; the mouth width (a smile) varies a little per photo
    nose_top, nose_bottom = eye_y + eye_r, eye_y + eye_r + face.nose_length * h
    nose_w = 0.05 * scale
    shade = _rgb(face.skin * 0.78)
    draw.polygon([(cx, nose_top), (cx - nose_w, nose_bottom), (cx + nose_w, nose_bottom)], shade)
    mouth_w = face.mouth_width * w * rng.uniform(0.9, 1.1) / 2
    mouth_h = face.mouth_height * scale * rng.uniform(0.8, 1.2)
    mouth_y = top + face.mouth_y * h
    draw.ellipse((cx - mouth_w, mouth_y - mouth_h, cx + mouth_w, mouth_y + mouth_h), _rgb(face.lips))

    image = image.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BILINEAR, fillcolor=_rgb(background))
    pixels = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float64)
    light = 1 + rng.uniform(-0.12, 0.12) * np.linspace(-1, 1, size)[None, :, None]  # light from one side
    pixels = pixels * light * rng.uniform(0.85, 1.15) + rng.normal(0, 5, pixels.shape)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


def write_identities(
    root: str | os.PathLike[str], identities: int, per_identity: int, size: int = 108, seed: int = 0
) -> Path:
    """Write `identities` people × `per_identity` RGB PNG photos of `size`×`size` under a new `root`.

    Each person has fixed traits (skin, hair, eye colour and spacing, face and mouth proportions);
    each photo varies pose, scale, expression, lighting and noise. A person's photos do not depend on
    how many people are written. `root` must not exist or be empty; it is filled beside itself and
    renamed into place, so an interrupted call leaves no half-written set.
    """
    root = Path(root)
    if identities < 1 or per_identity < 1:
        raise HwnasError(f"identities={identities}, per_identity={per_identity}: expected both to be at least 1")
    if size < 16:
        raise HwnasError(f"size={size}: expected at least 16 pixels")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise HwnasError(f"{root}: already exists; expected a new or empty directory for the identity set")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        for identity in range(identities):
            name = f"person_{identity:03d}"
            (staging / name).mkdir()
            face = _face(seed, identity)
            for index in range(1, per_identity + 1):
                rng = np.random.default_rng([seed, identity, index])
                _draw(face, size, rng).save(staging / name / f"{name}_{index:04d}.png")
        if root.exists():
            root.rmdir()
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _identity_images(root: Path) -> dict[str, list[int]]:
    """Each person folder's LFW-named image numbers (`NAME/NAME_0001.png`), sorted; people sorted by name."""
    found: dict[str, list[int]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        numbers = set()
        for path in folder.iterdir():
            match = IMAGE_NAME.match(path.name)
            if match and match["name"] == folder.name and path.is_file():
                numbers.add(int(match["index"]))
        if numbers:
            found[folder.name] = sorted(numbers)
    return found


def _matched(group: list[str], images: dict[str, list[int]], count: int, rng: np.random.Generator) -> list[str]:
    candidates = [(name, a, b) for name in group for i, a in enumerate(images[name]) for b in images[name][i + 1 :]]
    if len(candidates) < count:
        raise HwnasError(
            f"only {len(candidates)} distinct same-person pairs among {len(group)} people of a fold; "
            f"expected at least {count}: write more identities or more images per identity"
        )
    chosen = sorted(candidates[i] for i in rng.choice(len(candidates), count, replace=False))
    return [f"{name}\t{a}\t{b}" for name, a, b in chosen]


def _mismatched(group: list[str], images: dict[str, list[int]], count: int, rng: np.random.Generator) -> list[str]:
    sizes = [len(images[name]) for name in group]
    available = (sum(sizes) ** 2 - sum(n * n for n in sizes)) // 2
    if len(group) < 2 or available < count:
        raise HwnasError(
            f"only {available} distinct different-person pairs among {len(group)} people of a fold; "
            f"expected at least {count}: write more identities or more images per identity"
        )
    chosen: set[tuple[str, int, str, int]] = set()
    while len(chosen) < count:
        i, j = sorted(rng.choice(len(group), 2, replace=False).tolist())
        first, second = group[i], group[j]
        chosen.add((first, int(rng.choice(images[first])), second, int(rng.choice(images[second]))))
    return [f"{a}\t{ia}\t{b}\t{ib}" for a, ia, b, ib in sorted(chosen)]


def write_pairs(
    root: str | os.PathLike[str], path: str | os.PathLike[str], folds: int = 10, per_fold: int = 30, seed: int = 0
) -> Path:
    """Write an LFW `pairs.txt` at `path` for the people under `root`; each person lands in exactly one fold.

    Format (LFW's): a header `FOLDS<TAB>PER_FOLD`, then per fold `PER_FOLD` matched lines
    `NAME<TAB>I<TAB>J` followed by `PER_FOLD` mismatched lines `NAME1<TAB>I<TAB>NAME2<TAB>J`, with
    1-based image numbers. As in LFW the folds are disjoint in people and pairs do not repeat in a fold.
    """
    root = Path(root)
    if folds < 1 or per_fold < 1:
        raise HwnasError(f"folds={folds}, per_fold={per_fold}: expected both to be at least 1")
    if not root.is_dir():
        raise HwnasError(f"{root}: not a directory; expected one sub-folder of NAME_0001.png images per person")
    images = _identity_images(root)
    if len(images) < 2 * folds:
        raise HwnasError(
            f"{root}: {len(images)} people with LFW-named images (NAME/NAME_0001.png); "
            f"expected at least {2 * folds} for {folds} folds of people"
        )
    rng = np.random.default_rng([seed, folds, per_fold])
    names = list(images)
    order = rng.permutation(len(names))
    lines = [f"{folds}\t{per_fold}"]
    for fold in range(folds):
        group = sorted(names[i] for i in order[fold::folds])
        try:
            lines += _matched(group, images, per_fold, rng) + _mismatched(group, images, per_fold, rng)
        except HwnasError as exc:
            raise HwnasError(f"{root}: fold {fold + 1} of {folds}: {exc}") from None
    return atomic_write_text(path, "\n".join(lines) + "\n")
