"""Named image preprocessing: how a photo becomes a model's input arrays.

A zoo model names its preprocessing in its task metadata (``"preprocess": "y"``); the name is
stored in every ONNX file ferry exports, so ``verify --images``, ``optimize --calibration`` and
the packaged targets can feed real photos to a plain ``.onnx`` file without the PyTorch model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from ferry.errors import UserError

Preprocess = Callable[[Image.Image], list[np.ndarray]]


def y_channel(img: Image.Image) -> list[np.ndarray]:
    """The Y channel of full-range BT.601 YCbCr (PIL) as float32 (1, 1, H, W) in [0, 1]."""
    y = img.convert("RGB").convert("YCbCr").split()[0]
    return [(np.asarray(y, dtype=np.float32) / 255.0)[None, None]]


def rgb_float(img: Image.Image) -> list[np.ndarray]:
    """RGB as float32 (1, 3, H, W) in [0, 1]."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return [np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]]


def rgb_uint8(img: Image.Image) -> list[np.ndarray]:
    """RGB as uint8 (H, W, 3), as an app hands a decoded image to an ``--rgb-io`` graph."""
    return [np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))]


_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def imagenet(img: Image.Image) -> list[np.ndarray]:
    """Resize to 224x224 (bilinear), scale to [0, 1] and normalise with ImageNet statistics."""
    rgb = np.asarray(img.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32) / 255.0
    return [np.ascontiguousarray(((rgb - _IMAGENET_MEAN) / _IMAGENET_STD).transpose(2, 0, 1))[None]]


PREPROCESSORS: dict[str, Preprocess] = {
    "y": y_channel,
    "rgb": rgb_float,
    "rgb-uint8": rgb_uint8,
    "imagenet": imagenet,
}


def get_preprocess(name: str) -> Preprocess:
    """Look up a preprocessing by name."""
    try:
        return PREPROCESSORS[name]
    except KeyError:
        raise UserError(f"unknown preprocessing {name!r}; known: {', '.join(sorted(PREPROCESSORS))}") from None


def for_task(task: Mapping[str, Any] | None) -> Preprocess | None:
    """The preprocessing a model's task metadata names, or ``None`` when it names none."""
    name = (task or {}).get("preprocess")
    return get_preprocess(str(name)) if name else None
