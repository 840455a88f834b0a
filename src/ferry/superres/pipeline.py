"""The super-resolution pipeline of the tutorial: YCbCr split, Y through a runner, bicubic Cb/Cr, merge.

A *runner* is any callable taking the Y plane as a float32 ``(1, 1, H, W)`` array in [0, 1]
and returning the upscaled plane ``(1, 1, sH, sW)``: PyTorch eager, an ONNX Runtime session, or
any other backend. The pipeline around it is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ferry.backends.base import Session
from ferry.superres import imaging

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
