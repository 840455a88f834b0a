"""The super-resolution task: the tutorial's YCbCr pipeline and its PSNR evaluation.

A *runner* is any callable taking the Y plane as a float32 ``(1, 1, H, W)`` array in [0, 1]
and returning the upscaled plane ``(1, 1, sH, sW)``: PyTorch eager, an ONNX Runtime session, or
any other backend. The pipeline around it is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from ferry import imaging
from ferry.backends.base import Session

Runner = Callable[[np.ndarray], np.ndarray]


def torch_runner(module: torch.nn.Module) -> Runner:
    """Wrap an ``nn.Module`` as a runner (eval mode, no autograd)."""
    module.eval()

    def run(y: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(y))).numpy()

    return run


def session_runner(session: Session) -> Runner:
    """Wrap a backend session whose single input is the Y plane as a runner.

    A session with a static height and width (LiteRT) is run in windows of exactly that size.
    """
    info = session.inputs[0]

    def run(y: np.ndarray) -> np.ndarray:
        return next(iter(session.run({info.name: y}).outputs.values()))

    height, width = info.shape[-2:] if len(info.shape) == 4 else (None, None)
    if isinstance(height, int) and isinstance(width, int):
        return fixed_window_runner(run, (height, width))
    return run


def fixed_window_runner(runner: Runner, window: tuple[int, int], overlap: int = 8) -> Runner:
    """Run a static-shape model on any plane in overlapping windows of exactly ``window`` pixels.

    Windows overlap by ``overlap`` pixels of context on each side (more than ESPCN's receptive
    radius of 5, so their seams are invisible); the plane is extended by edge replication, which
    makes pixels within the receptive radius of the photo's border differ slightly from a
    whole-image run (the network zero-pads its feature maps there instead).
    """
    th, tw = window

    def run(y: np.ndarray) -> np.ndarray:
        n, _, h, w = y.shape
        if (h, w) == (th, tw):
            return runner(y)
        ov = max(0, min(overlap, (th - 1) // 4, (tw - 1) // 4))
        sh, sw = th - 2 * ov, tw - 2 * ov  # the part of each window that is kept
        rows, cols = -(-h // sh), -(-w // sw)
        padded = np.pad(y, ((0, 0), (0, 0), (ov, rows * sh - h + ov), (ov, cols * sw - w + ov)), mode="edge")
        out: np.ndarray | None = None
        scale = 0
        for i in range(rows):
            for j in range(cols):
                piece = runner(np.ascontiguousarray(padded[:, :, i * sh : i * sh + th, j * sw : j * sw + tw]))
                if out is None:
                    scale = piece.shape[-1] // tw
                    out = np.empty((n, piece.shape[1], rows * sh * scale, cols * sw * scale), piece.dtype)
                out[:, :, i * sh * scale : (i + 1) * sh * scale, j * sw * scale : (j + 1) * sw * scale] = piece[
                    :, :, ov * scale : (ov + sh) * scale, ov * scale : (ov + sw) * scale
                ]
        assert out is not None
        return out[:, :, : h * scale, : w * scale]

    return run


def upscale_y(y: Image.Image, runner: Runner) -> Image.Image:
    """Run the Y plane through the network and return it as a rounded, clipped ``L`` image."""
    return imaging.array_to_y(runner(imaging.y_to_array(y)))


def super_resolve(img: Image.Image, runner: Runner) -> Image.Image:
    """The tutorial's pipeline: split YCbCr, Y through the net, Cb/Cr bicubic, merge to RGB."""
    y, cb, cr = imaging.split_ycbcr(img)
    return imaging.merge_ycbcr(upscale_y(y, runner), cb, cr)


@dataclass(frozen=True)
class ImageScore:
    """PSNR (dB) and SSIM of the model and of bicubic on one image (Y channel, border cropped)."""

    name: str
    size: tuple[int, int]
    psnr_model: float
    psnr_bicubic: float
    ssim_model: float = float("nan")
    ssim_bicubic: float = float("nan")

    @property
    def gain(self) -> float:
        return self.psnr_model - self.psnr_bicubic


@dataclass(frozen=True)
class Evaluation:
    """PSNR of a super-resolution model against PIL bicubic on a set of images."""

    scale: int
    border: int
    images: tuple[ImageScore, ...]

    @property
    def mean_model(self) -> float:
        return float(np.mean([s.psnr_model for s in self.images]))

    @property
    def mean_bicubic(self) -> float:
        return float(np.mean([s.psnr_bicubic for s in self.images]))

    @property
    def mean_gain(self) -> float:
        return self.mean_model - self.mean_bicubic

    @property
    def mean_ssim_model(self) -> float:
        return float(np.mean([s.ssim_model for s in self.images]))

    @property
    def mean_ssim_bicubic(self) -> float:
        return float(np.mean([s.ssim_bicubic for s in self.images]))

    def to_dict(self) -> dict[str, object]:
        return {
            "scale": self.scale,
            "border": self.border,
            "images": [asdict(s) | {"gain": s.gain} for s in self.images],
            "mean_psnr_model": self.mean_model,
            "mean_psnr_bicubic": self.mean_bicubic,
            "mean_gain_db": self.mean_gain,
            "mean_ssim_model": self.mean_ssim_model,
            "mean_ssim_bicubic": self.mean_ssim_bicubic,
        }


def score_image(name: str, hr: Image.Image, runner: Runner, *, scale: int, border: int = 3) -> ImageScore:
    """Downscale ``hr`` bicubically by ``scale``, upscale it with the model and with bicubic,
    and compare both with ``hr`` on the Y channel."""
    hr = imaging.crop_to_multiple(hr.convert("RGB"), scale)
    lr = imaging.downscale(hr, scale)
    hr_y = imaging.luminance(hr)
    model_y = np.asarray(upscale_y(imaging.split_ycbcr(lr)[0], runner), dtype=np.float64)
    bicubic_y = imaging.luminance(imaging.upscale_bicubic(lr, scale))
    return ImageScore(
        name=name,
        size=hr.size,
        psnr_model=imaging.psnr(hr_y, model_y, border=border),
        psnr_bicubic=imaging.psnr(hr_y, bicubic_y, border=border),
        ssim_model=imaging.ssim(hr_y, model_y, border=border),
        ssim_bicubic=imaging.ssim(hr_y, bicubic_y, border=border),
    )


def evaluate(runner: Runner, images: Sequence[tuple[str, Image.Image]], *, scale: int, border: int = 3) -> Evaluation:
    """Score a model on named high-resolution images (see :func:`score_image`)."""
    scores = tuple(score_image(n, im, runner, scale=scale, border=border) for n, im in images)
    return Evaluation(scale=scale, border=border, images=scores)
