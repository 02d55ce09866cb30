"""`--data fonts`: the 62 characters 0-9, A-Z, a-z rendered from the typefaces that ship with matplotlib, in the
spirit of notMNIST and Chars74K's font set, in the 47 classes of EMNIST Balanced; nothing is downloaded.

The 15 lower-case letters whose capital has the same shape (c i j k l m o p s u v w x y z) share its class, as
in EMNIST Balanced: at 16x16, warped and scaled at random, an `o` and an `O` differ only in a size the warp
blurs, so telling them apart is a coin toss whose outcome depends on the training seed, not on the network.

22 faces (DejaVu Sans, Sans Mono and Serif and STIX General, four styles each; Computer Modern roman, bold,
italic, math italic, sans and typewriter). Five of them (one per family) are held out: the test pool shows
only faces no training image comes from, so a figure on it measures how a network generalises to a new
typeface, not how well it remembers one.

Each face draws every character once, large (`RENDER_PX`), on one baseline, so the glyphs keep their place
and size in the em square: an `o` stays smaller than an `O`. Each drawing then gives several images through a
random affine warp (rotation, scale, shear, shift) and stroke weight; each is brought down to the native 16x16
by area averaging and stretched to full contrast, in batches with torch. A fixed generator per pool makes the
pools the same in every run (on one machine: FreeType and float rounding may move a pixel on another).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import HwnasError

CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MERGED = "cijklmopsuvwxyz"  # lower-case letters labelled as their capital (EMNIST Balanced)
CLASSES = tuple(c for c in CHARACTERS if c not in MERGED)  # 47: 0-9, A-Z, a b d e f g h n q r t
LABELS = tuple(CLASSES.index(c.upper() if c in MERGED else c) for c in CHARACTERS)  # class of each character
TRAIN_FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmti10.ttf",
    "cmmi10.ttf",
    "cmtt10.ttf",
)
TEST_FACES = (
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "cmss10.ttf",
)
SIZE = 16  # the native side of an image
RENDER_PX = 64  # the side each glyph is drawn at before it is warped and averaged down
TRAIN_VARIANTS = 12  # images per training face and character: 17 faces x 62 characters x 12 = 12,648
TEST_VARIANTS = 20  # images per held-out face and character: 5 faces x 62 characters x 20 = 6,200
TRAIN_SEED, TEST_SEED = 1, 2


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def draw_face(path: Path) -> torch.Tensor:
    """Every character of the face at `RENDER_PX`, [62, RENDER_PX, RENDER_PX] float in [0, 1] (ink = 1), on one
    baseline and centred horizontally on its ink, at a size where the font's tallest glyph fits."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), size=round(RENDER_PX * 0.62))
    boxes = [font.getbbox(c) for c in CHARACTERS]
    top, bottom = min(b[1] for b in boxes), max(b[3] for b in boxes)
    baseline_shift = (RENDER_PX - (bottom - top)) / 2 - top  # the face's ink, all characters together, centred
    out = torch.empty(len(CHARACTERS), RENDER_PX, RENDER_PX)
    for i, (char, box) in enumerate(zip(CHARACTERS, boxes, strict=True)):
        canvas = Image.new("L", (RENDER_PX, RENDER_PX), 0)
        x = (RENDER_PX - (box[2] - box[0])) / 2 - box[0]
        ImageDraw.Draw(canvas).text((x, baseline_shift), char, fill=255, font=font)
        out[i] = torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).view(RENDER_PX, RENDER_PX) / 255
    return out


def warp(glyphs: torch.Tensor, variants: int, generator: torch.Generator) -> torch.Tensor:
    """`variants` random images of each drawing in `glyphs` [N, R, R]: [N * variants, SIZE, SIZE] uint8, the
    variants of one drawing next to each other."""
    n = glyphs.shape[0] * variants
    source = glyphs.repeat_interleave(variants, 0).unsqueeze(1)
    bolder = torch.rand(n, generator=generator) < 0.5  # half bolder (a 3x3 max filter); none thinner: hairlines go
    source = torch.where(bolder.view(-1, 1, 1, 1), F.max_pool2d(source, 3, 1, 1), source)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(12)
    scale = 0.85 + torch.rand(n, generator=generator) * 0.3
    shear = (torch.rand(n, generator=generator) * 2 - 1) * 0.2
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.1
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    first = torch.stack([cos, -sin + shear * cos, shift[:, 0]], 1)
    theta = torch.stack([first, torch.stack([sin, cos + shear * sin, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, RENDER_PX, RENDER_PX], align_corners=False)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    small = F.interpolate(warped, size=(SIZE, SIZE), mode="area")
    small = small / small.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)  # full contrast: a thin face is not faint
    return small.mul(255).round().clamp(0, 255).to(torch.uint8)


def render(faces: tuple[str, ...], variants: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, SIZE, SIZE] uint8 and class labels [N] (`LABELS`) of the faces, `variants` per face and
    character."""
    directory = font_dir()
    generator = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for name in faces:
        path = directory / name
        if not path.is_file():
            raise HwnasError(f"--data fonts: matplotlib's font {name} is not in {directory}; expected it there")
        images.append(warp(draw_face(path), variants, generator))
        labels.append(torch.tensor(LABELS).repeat_interleave(variants))
    return torch.cat(images), torch.cat(labels)
