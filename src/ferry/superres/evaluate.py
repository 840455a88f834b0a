"""``ferry eval superres``: PSNR and SSIM of a super-resolution model against PIL bicubic on a
folder of photos (or the bundled validation photos), with a side-by-side HTML page.
The scoring itself is :mod:`ferry.superres.scoring`."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from ferry.errors import UserError
from ferry.report import Raw, esc, image_tag, table, write_html
from ferry.superres import datasets, imaging
from ferry.superres.scoring import Evaluation, evaluate
from ferry.superres.upscale import UpscaleConfig, YChannelModel


def _images(folder: str | os.PathLike[str] | None, data: str) -> list[tuple[str, Image.Image]]:
    if folder is None:
        return datasets.validation_images(data)
    if data != "bundled":
        raise UserError(f"give a folder of photos or --data {data}, not both")
    root = Path(folder)
    files = imaging.find_images(root)
    return [(str(p.relative_to(root)), imaging.load_image(p)) for p in files]


def evaluate_superres(
    model: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    *,
    data: str = "bundled",
    backend: str = "onnxruntime",
    border: int = 3,
    report: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Score a super-resolution model on high-resolution photos.

    Each photo is cropped to a multiple of the scale, downscaled with PIL bicubic, upscaled by
    the model and by PIL bicubic, and both are compared with the original on the Y channel.

    Args:
        model: ``zoo:NAME`` or an ONNX file exported by ferry; default: the model
            ``ferry upscale`` uses (the strongest x3 zoo model).
        folder: photos to use; default: the validation photos of ``data``.
        data: with no folder, ``bundled`` (chelsea, coffee, monarch) or ``wallpapers`` (those
            and the held-out Debian wallpaper photos, as the model cards measure).
        backend: the runtime to run the model on.
        border: pixels cropped from every side before measuring.
        report: write an HTML page with the table and crops side by side.
    """
    if border < 0:
        raise UserError(f"--border must not be negative, got {border}")
    images = _images(folder, data)
    loaded = YChannelModel(UpscaleConfig(model=model, backend=backend, precision="fp32"))
    _check_sizes(images, loaded.scale, border)
    ev = replace(evaluate(loaded.runner, images, scale=loaded.scale, border=border), model=loaded.model)
    if report is not None:
        _write_report(ev, images, loaded.runner, loaded.scale, loaded.model, report)
    return ev


#: the side of SSIM's Gaussian window (sigma 1.5, truncated at 3.5 sigma): the smallest area, after
#: the border, that can be scored
_SSIM_WINDOW = 11


def min_side(scale: int, border: int) -> int:
    """The smallest photo side that can be scored: a multiple of ``scale`` that leaves SSIM's
    window after ``border`` pixels are cropped from each side."""
    need = max(_SSIM_WINDOW + 2 * border, scale)
    return -(-need // scale) * scale


def _check_sizes(images: list[tuple[str, Image.Image]], scale: int, border: int) -> None:
    """Refuse, before any scoring, a photo too small to be downscaled and scored."""
    side = min_side(scale, border)
    for name, img in images:
        w, h = img.size
        if min(w - w % scale, h - h % scale) < side:
            raise UserError(
                f"{name} is {w}x{h}: too small to score at x{scale} with a {border} px border;"
                f" give photos of at least {side}x{side} (or a smaller --border)"
            )


def _write_report(
    ev: Evaluation, images: list[tuple[str, Image.Image]], runner: Any, scale: int, model: str, path: Any
) -> None:
    from ferry.superres.pipeline import super_resolve

    rows: list[list[object]] = [
        [
            s.name,
            f"{s.size[0]}x{s.size[1]}",
            s.psnr_bicubic,
            s.psnr_model,
            Raw(f"{s.gain:+.2f}"),
            s.ssim_bicubic,
            s.ssim_model,
        ]
        for s in ev.images
    ]
    rows.append(
        [
            "mean",
            "",
            ev.mean_bicubic,
            ev.mean_model,
            Raw(f"{ev.mean_gain:+.2f}"),
            ev.mean_ssim_bicubic,
            ev.mean_ssim_model,
        ]
    )
    headers = ["image", "size", "PSNR bicubic", "PSNR model", "gain dB", "SSIM bicubic", "SSIM model"]
    crops = []
    for name, img in images:
        hr = imaging.crop_to_multiple(img, scale)
        lr = imaging.downscale(hr, scale)
        w, h = hr.size
        box = (w // 2 - 80, h // 2 - 60, w // 2 + 80, h // 2 + 60)
        parts = [
            ("bicubic", imaging.upscale_bicubic(lr, scale).crop(box)),
            (model, super_resolve(lr, runner).crop(box)),
            ("original", hr.crop(box)),
        ]
        crops.append(f"<h3>{esc(name)}</h3>" + "".join(image_tag(im, cap, width=240) for cap, im in parts))
    write_html(
        path,
        f"ferry eval: {model} x{scale}",
        [(f"PSNR and SSIM on Y ({ev.border} px border)", table(headers, rows)), ("Centre crops", "".join(crops))],
        subtitle=f"{len(ev.images)} photos, downscaled x{scale} with PIL bicubic;",
    )
