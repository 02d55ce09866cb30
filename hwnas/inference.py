"""`predict`: classify image files with trained weights, preprocessed as the architecture's `pretrained_cfg` records.

Each file is decoded with PIL to the network's channels, brought to its input size by the recorded rule
(`crop_mode` `center`: resized on the short side and centre-cropped, exactly as `FileSource` decodes a
`folder:` dataset; `squash`: resized whole, exactly as `Preprocess` resizes decoded datasets such as digits),
normalised by the recorded mean and std (`Preprocess`), and run through the network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .arch import Architecture, resolve_arch
from .data import Batch, Preprocess
from .data.augment import resize
from .data.imageset import cover_and_crop, open_image, pil_to_tensor
from .errors import HwnasError
from .model import build_model, load_weights
from .pretrained_cfg import PretrainedCfg

BATCH = 64
PIL_FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}

ImagePaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def predict(
    arch: Architecture | str, weights: str | os.PathLike[str], images: ImagePaths, *, top_k: int = 5
) -> list[dict[str, Any]]:
    """The `top_k` classes of each image file (one path or several), most probable first: per image
    `{"image": path, "top": [{"label": name, "index": class, "probability": p}, ...]}`.

    `arch` must record its `pretrained_cfg` (an `arch.json` written by `hwnas train` or `search`); `weights`
    are its trained weights (e.g. that run's `model.pt`)."""
    arch = resolve_arch(arch)
    cfg = input_cfg(arch)
    if not (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 1):
        raise HwnasError(f"predict: top_k {top_k!r}; expected a positive integer")
    paths = image_paths(images)
    model = build_model(arch).eval()
    load_weights(model, weights)
    preprocess = Preprocess(cfg.input_size, cfg.mean, cfg.std)
    labels = cfg.labels()
    k = min(top_k, cfg.num_classes)
    results = []
    with torch.inference_mode():
        for start in range(0, len(paths), BATCH):
            chunk = paths[start : start + BATCH]
            positions = torch.arange(len(chunk))
            batch = Batch(torch.stack([load_image(p, cfg) for p in chunk]), torch.zeros_like(positions), positions)
            top = model(preprocess(batch, torch.device("cpu"))).float().softmax(1).topk(k, 1)
            for path, probs, indices in zip(chunk, top.values.tolist(), top.indices.tolist(), strict=True):
                ranked = [
                    {"label": labels[i], "index": i, "probability": p} for p, i in zip(probs, indices, strict=True)
                ]
                results.append({"image": str(path), "top": ranked})
    return results


def input_cfg(arch: Architecture) -> PretrainedCfg:
    """The architecture's recorded preprocessing, for image files of 1 (grey) or 3 (RGB) channels."""
    cfg = arch.pretrained_cfg
    if cfg is None:
        raise HwnasError(
            f"predict: the architecture (space {arch.spec.name}) records no pretrained_cfg (mean, std, input size, "
            "labels); expected the arch.json of a run of hwnas train or search, or add a pretrained_cfg to the file "
            "(docs/design.md, section 4.2)"
        )
    if cfg.input_size[0] not in (1, 3):
        raise HwnasError(
            f"predict: the network takes {cfg.input_size[0]} input channels; image files decode to 1 (grey) or 3 (RGB)"
        )
    return cfg


def image_paths(images: ImagePaths) -> list[Path]:
    """The image files to classify; a missing one (or none at all) is refused in one line."""
    paths = [Path(images)] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    if not paths:
        raise HwnasError("predict: no images given; expected one or more image files")
    for path in paths:
        if not path.is_file():
            raise HwnasError(f"image {path}: {'not a file' if path.exists() else 'no such file'}")
    return paths


def load_image(path: Path, cfg: PretrainedCfg) -> torch.Tensor:
    """One image file at the network's input size, as a training image reached it before normalisation: uint8
    [C, H, W] (`center`: decoded, resized and cropped by PIL) or float in [0, 1] (`squash`: resized by torch)."""
    channels, h, w = cfg.input_size
    image = open_image(path, channels)
    if cfg.crop_mode == "center":
        return pil_to_tensor(cover_and_crop(image, cfg.scale_size(), (h, w), PIL_FILTERS[cfg.interpolation]))
    x = pil_to_tensor(image).float().div(255).unsqueeze(0)
    if x.shape[-2:] != cfg.scale_size():
        x = resize(x, cfg.scale_size(), cfg.interpolation)
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[0, :, top : top + h, left : left + w]
