"""Scoring an upscaler: PSNR and SSIM on the Y channel against PIL bicubic, border cropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ferry.superres import imaging
from ferry.superres.pipeline import Runner, upscale_y


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
    #: what was scored: ``zoo:NAME`` or an ONNX file (empty when a bare runner was)
    model: str = ""

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
    def median_gain(self) -> float:
        return float(np.median([s.gain for s in self.images]))

    @property
    def worst_gain(self) -> float:
        return float(min(s.gain for s in self.images))

    @property
    def mean_ssim_model(self) -> float:
        return float(np.mean([s.ssim_model for s in self.images]))

    @property
    def mean_ssim_bicubic(self) -> float:
        return float(np.mean([s.ssim_bicubic for s in self.images]))

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "scale": self.scale,
            "border": self.border,
            "images": [asdict(s) | {"gain": s.gain} for s in self.images],
            "mean_psnr_model": self.mean_model,
            "mean_psnr_bicubic": self.mean_bicubic,
            "mean_gain_db": self.mean_gain,
            "median_gain_db": self.median_gain,
            "worst_gain_db": self.worst_gain,
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
