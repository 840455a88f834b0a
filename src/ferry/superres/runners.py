"""Runners: the Y plane in, the upscaled plane out, on any runtime; and the one tiler.

A *runner* is any callable taking the Y plane as a float32 ``(N, 1, H, W)`` array in [0, 1] and
returning the upscaled plane ``(N, 1, sH, sW)``: PyTorch eager, a backend session, or a runner
wrapped by :func:`tiled`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ferry.backends.base import Session

if TYPE_CHECKING:
    import torch

Runner = Callable[[np.ndarray], np.ndarray]


def torch_runner(module: torch.nn.Module) -> Runner:
    """Wrap an ``nn.Module`` as a runner (eval mode, no autograd)."""
    import torch

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
        return tiled(run, (height, width), overlap=8, fixed=True)
    return run


def receptive_radius(runner: Runner, *, limit: int = 40) -> int | None:
    """How many input pixels away from an output pixel the network looks, measured: one pixel of
    a random plane is changed and the outputs that moved are found. ``None`` when they reach
    ``limit`` (a wider or global receptive field: no finite tile overlap is exact).

    An output counts as moved when it changed by more than two runs of the unchanged plane differ
    anywhere: exact on a deterministic runtime, and robust to one whose results differ in the
    last float bits from run to run (PyTorch's CPU kernels can, on a busy machine)."""
    side = 2 * limit + 1
    y = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
    base = runner(y)
    noise = float(np.abs(runner(y) - base).max())
    y[0, 0, limit, limit] = 1.0 - y[0, 0, limit, limit]
    moved = np.argwhere(np.abs(runner(y)[0, 0] - base[0, 0]) > noise)
    if moved.size == 0:
        return 0
    scale = base.shape[2] // side
    reach = max(limit * scale - int(moved.min()), int(moved.max()) - (limit + 1) * scale + 1)
    radius = math.ceil(reach / scale)
    return None if radius >= limit else radius


# A piece: the kept area in the plane (top, left, bottom, right), the window the network sees in
# the source array (top, left, bottom, right), and where the kept area starts in that window.
_Piece = tuple[tuple[int, int, int, int], tuple[int, int, int, int], tuple[int, int]]


def tiled(runner: Runner, tile: int | tuple[int, int], overlap: int, *, batch: int = 1, fixed: bool = False) -> Runner:
    """Run ``runner`` on a plane piece by piece, each piece seen with ``overlap`` pixels of context.

    Args:
        runner: the runner to wrap.
        tile: the piece size (one side, or height and width); 0 or less: no tiling.
        overlap: pixels of context on each side of a piece (more than the network's receptive
            radius makes the seams invisible: tiled equals untiled within float rounding).
        batch: pieces of the same shape go through the network ``batch`` at a time (one call on
            an ``N x 1 x H x W`` array: fewer, larger calls for runtimes that gain from them).
        fixed: every window is exactly ``tile`` pixels, context included, for a static-shape
            model (LiteRT): the plane is extended by edge replication, so pixels within the
            receptive radius of the photo's border differ slightly from a whole-image run (the
            network zero-pads its feature maps there instead).
    """
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if th <= 0 or tw <= 0:
        return runner

    def run(y: np.ndarray) -> np.ndarray:
        h, w = y.shape[2:]
        if (h, w) == (th, tw) if fixed else (h <= th and w <= tw):
            return runner(y)
        source, pieces = _fixed_pieces(y, th, tw, overlap) if fixed else (y, _pieces(h, w, th, tw, overlap))
        return _assemble(runner, source, pieces, y.shape, batch)

    return run


def _pieces(h: int, w: int, th: int, tw: int, overlap: int) -> list[_Piece]:
    """Pieces of at most ``th x tw`` with up to ``overlap`` pixels of context, clipped at the border."""
    pieces: list[_Piece] = []
    for top in range(0, h, th):
        for left in range(0, w, tw):
            bottom, right = min(top + th, h), min(left + tw, w)
            t0, l0 = max(0, top - overlap), max(0, left - overlap)
            b0, r0 = min(h, bottom + overlap), min(w, right + overlap)
            pieces.append(((top, left, bottom, right), (t0, l0, b0, r0), (top - t0, left - l0)))
    return pieces


def _fixed_pieces(y: np.ndarray, th: int, tw: int, overlap: int) -> tuple[np.ndarray, list[_Piece]]:
    """Windows of exactly ``th x tw`` over the edge-replicated plane."""
    h, w = y.shape[2:]
    ov = max(0, min(overlap, (th - 1) // 4, (tw - 1) // 4))
    sh, sw = th - 2 * ov, tw - 2 * ov  # the part of each window that is kept
    rows, cols = math.ceil(h / sh), math.ceil(w / sw)
    padded = np.pad(y, ((0, 0), (0, 0), (ov, rows * sh - h + ov), (ov, cols * sw - w + ov)), mode="edge")
    pieces: list[_Piece] = []
    for i in range(rows):
        for j in range(cols):
            kept = (i * sh, j * sw, min((i + 1) * sh, h), min((j + 1) * sw, w))
            pieces.append((kept, (i * sh, j * sw, i * sh + th, j * sw + tw), (ov, ov)))
    return padded, pieces


def _assemble(
    runner: Runner, source: np.ndarray, pieces: list[_Piece], shape: tuple[int, ...], batch: int
) -> np.ndarray:
    """Run the pieces (same-shaped windows ``batch`` at a time) and write their kept areas."""
    n, _, h, w = shape
    groups: dict[tuple[int, int], list[_Piece]] = {}
    for piece in pieces:
        t0, l0, b0, r0 = piece[1]
        groups.setdefault((b0 - t0, r0 - l0), []).append(piece)
    out: np.ndarray | None = None
    for (wh, _), same in groups.items():
        for k in range(0, len(same), max(1, batch)):
            chunk = same[k : k + max(1, batch)]
            stack = np.concatenate([source[:, :, t0:b0, l0:r0] for _, (t0, l0, b0, r0), _ in chunk])
            result = runner(np.ascontiguousarray(stack))
            scale = result.shape[2] // wh
            if out is None:
                out = np.empty((n, result.shape[1], h * scale, w * scale), result.dtype)
            for m, ((top, left, bottom, right), _, (dt, dl)) in enumerate(chunk):
                kh, kw = (bottom - top) * scale, (right - left) * scale
                out[:, :, top * scale : bottom * scale, left * scale : right * scale] = result[
                    m * n : (m + 1) * n, :, dt * scale : dt * scale + kh, dl * scale : dl * scale + kw
                ]
    assert out is not None
    return out
