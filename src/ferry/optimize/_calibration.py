"""Calibration samples for int8: array files, images through the stored preprocessing, or a task's images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ferry import onnx_file
from ferry.errors import UserError
from ferry.onnx_file import read_metadata
from ferry.optimize._results import OptimizeConfig


def _dynamic_spatial(proto: onnx.ModelProto, name: str) -> bool:
    for inp in proto.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            return len(dims) == 4 and not any(d.HasField("dim_value") for d in dims[2:])
    return False


def calibration_data(
    proto: onnx.ModelProto, cfg: OptimizeConfig, *, default_images: Callable[[], list[Any]] | None = None
) -> list[dict[str, np.ndarray]]:
    """Calibration samples: ``.npy``/``.npz`` files or images of ``cfg.calibration``, else the
    default images; random crops of ``cfg.crop`` pixels where the model is spatially dynamic."""
    from ferry import images as imaging
    from ferry import preprocessing
    from ferry.samples import read_arrays

    names = onnx_file.input_names(proto)
    rng = np.random.default_rng(cfg.seed)
    samples: list[dict[str, np.ndarray]] = []
    images: list[Any] = []
    if cfg.calibration is not None:
        folder = Path(cfg.calibration)
        if not folder.is_dir():
            raise UserError(f"--calibration must be a folder of images or .npy/.npz files: {folder}")
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".npy", ".npz"))
        if files:
            samples = [read_arrays([os.fspath(p)], names) for p in files]
        else:
            images = [imaging.load_image(p) for p in imaging.find_images(folder)]
    elif default_images is not None:
        images = [img for _, img in default_images()]
    else:
        raise UserError("int8 static quantization needs --calibration DIR (images or .npy/.npz samples)")
    if images:
        prep = preprocessing.for_task(read_metadata(proto).get("task"))
        if prep is None:
            raise UserError(
                "the model has no stored preprocessing (it was not exported by ferry from a zoo model);"
                " give --calibration a folder of .npy/.npz samples instead of images"
            )
        per_image = max(1, cfg.calibration_samples // max(1, len(images)))
        for img in images:
            arrays = prep(img)
            for _ in range(per_image):
                feed = {}
                for name, arr in zip(names, arrays, strict=True):
                    if _dynamic_spatial(proto, name) and arr.ndim == 4:
                        h, w = arr.shape[2:]
                        ch, cw = min(cfg.crop, h), min(cfg.crop, w)
                        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                        arr = arr[:, :, top : top + ch, left : left + cw]
                    feed[name] = np.ascontiguousarray(arr)
                samples.append(feed)
    if not samples:
        raise UserError(f"no calibration samples found in {cfg.calibration}")
    missing = [n for n in names if n not in samples[0]]
    if missing:
        raise UserError(f"calibration samples lack input(s) {', '.join(missing)}")
    return samples[: cfg.calibration_samples]
