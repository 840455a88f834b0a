"""The super-resolution pipeline of the tutorial: YCbCr split, Y through a runner, bicubic Cb/Cr, merge.

A *runner* is any callable taking the Y plane as a float32 ``(1, 1, H, W)`` array in [0, 1]
and returning the upscaled plane ``(1, 1, sH, sW)``: PyTorch eager, an ONNX Runtime session, or
any other backend. The pipeline around it is the same for all of them.
"""

from __future__ import annotations

from PIL import Image

from ferry.superres import imaging
from ferry.superres.runners import Runner, session_runner, torch_runner

__all__ = ["Runner", "session_runner", "super_resolve", "torch_runner", "upscale_y"]


def upscale_y(y: Image.Image, runner: Runner) -> Image.Image:
    """Run the Y plane through the network and return it as a rounded, clipped ``L`` image."""
    return imaging.array_to_y(runner(imaging.y_to_array(y)))


def super_resolve(img: Image.Image, runner: Runner) -> Image.Image:
    """The tutorial's pipeline: split YCbCr, Y through the net, Cb/Cr bicubic, merge to RGB."""
    y, cb, cr = imaging.split_ycbcr(img)
    return imaging.merge_ycbcr(upscale_y(y, runner), cb, cr)
