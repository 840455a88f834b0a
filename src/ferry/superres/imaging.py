"""Image helpers for super-resolution: YCbCr split/merge as PIL does it, bicubic resizing, PSNR.

Everything here works on Pillow images and numpy arrays only (no torchvision), so the same
code serves training, evaluation, the demo and the runtime pipelines.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ferry.errors import UserError
from ferry.images import IMAGE_SUFFIXES, find_images, load_image

__all__ = ["IMAGE_SUFFIXES", "find_images", "load_image"]


def crop_to_multiple(img: Image.Image, factor: int) -> Image.Image:
    """Crop the bottom/right edge so that both sides are multiples of ``factor``."""
    w, h = img.size
    return img.crop((0, 0, w - w % factor, h - h % factor))


def downscale(img: Image.Image, factor: int) -> Image.Image:
    """Bicubic downscale by an integer factor (the standard SR degradation)."""
    w, h = img.size
    if w < factor or h < factor:
        raise UserError(f"image {w}x{h} is too small to downscale by {factor}")
    return img.resize((w // factor, h // factor), Image.Resampling.BICUBIC)


def upscale_bicubic(img: Image.Image, factor: int) -> Image.Image:
    """PIL bicubic upscale by an integer factor: the baseline every SR model must beat."""
    w, h = img.size
    return img.resize((w * factor, h * factor), Image.Resampling.BICUBIC)


def y_to_array(y: Image.Image) -> np.ndarray:
    """An ``L`` image as float32 in [0, 1] with shape (1, 1, H, W), as ToTensor + unsqueeze gives."""
    return (np.asarray(y, dtype=np.float32) / 255.0)[None, None]


def array_to_y(arr: np.ndarray) -> Image.Image:
    """A (1, 1, H, W) or (H, W) float array in [0, 1] back to an ``L`` image, rounded and clipped."""
    plane = np.asarray(arr, dtype=np.float32).reshape(arr.shape[-2], arr.shape[-1])
    return Image.fromarray(np.clip(np.rint(plane * 255.0), 0, 255).astype(np.uint8), mode="L")


def split_ycbcr(img: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """Split an RGB image into full-range BT.601 Y, Cb, Cr planes (PIL's conversion)."""
    y, cb, cr = img.convert("RGB").convert("YCbCr").split()
    return y, cb, cr


def merge_ycbcr(y: Image.Image, cb: Image.Image, cr: Image.Image) -> Image.Image:
    """Merge a super-resolved Y with Cb/Cr upscaled bicubically to Y's size; returns RGB."""
    cb = cb.resize(y.size, Image.Resampling.BICUBIC)
    cr = cr.resize(y.size, Image.Resampling.BICUBIC)
    return Image.merge("YCbCr", [y, cb, cr]).convert("RGB")


def luminance(img: Image.Image) -> np.ndarray:
    """The Y channel of an image as float64 in [0, 255]."""
    return np.asarray(img.convert("RGB").convert("YCbCr").split()[0], dtype=np.float64)


def psnr(reference: np.ndarray, test: np.ndarray, *, border: int = 0, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two same-shaped arrays, ignoring ``border`` pixels.

    Identical inputs give ``inf``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    tst = np.asarray(test, dtype=np.float64)
    if ref.shape != tst.shape:
        raise UserError(f"PSNR needs equal shapes, got {ref.shape} and {tst.shape}")
    if border:
        ref = ref[..., border:-border, border:-border]
        tst = tst[..., border:-border, border:-border]
    mse = float(np.mean((ref - tst) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(peak**2 / mse))


def ssim(reference: np.ndarray, test: np.ndarray, *, border: int = 0, peak: float = 255.0) -> float:
    """Structural similarity (scikit-image's Gaussian-weighted SSIM) ignoring ``border`` pixels."""
    from skimage.metrics import structural_similarity

    ref = np.asarray(reference, dtype=np.float64)
    tst = np.asarray(test, dtype=np.float64)
    if border:
        ref = ref[border:-border, border:-border]
        tst = tst[border:-border, border:-border]
    return float(
        structural_similarity(ref, tst, data_range=peak, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    )


def side_by_side(images: list[tuple[str, Image.Image]], *, height: int | None = None) -> Image.Image:
    """Place labelled images next to each other at a common height (nearest-neighbour zoom)."""
    from PIL import ImageDraw

    target_h = height or max(im.height for _, im in images)
    scaled = [
        (label, im.resize((max(1, round(im.width * target_h / im.height)), target_h), Image.Resampling.NEAREST))
        for label, im in images
    ]
    pad, label_h = 8, 22
    width = sum(im.width for _, im in scaled) + pad * (len(scaled) + 1)
    canvas = Image.new("RGB", (width, target_h + label_h + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for label, im in scaled:
        canvas.paste(im, (x, pad + label_h))
        draw.text((x, pad + 4), label, fill="black")
        x += im.width + pad
    return canvas
