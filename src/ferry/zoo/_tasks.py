"""Task metadata of the zoo's models, kept apart from the networks so that the registry can be
read without importing torch."""

from __future__ import annotations

from typing import Any


def superres_y_task(scale: int) -> dict[str, Any]:
    """The task of a Y-channel super-resolution network (ESPCN and the stronger upscalers)."""
    return {
        "kind": "super-resolution",
        "scale": scale,
        "colour": "Y of full-range BT.601 YCbCr (PIL), float32 in [0, 1]; Cb/Cr upscaled bicubically",
        "input_layout": "N x 1 x H x W",
        "output_layout": f"N x 1 x {scale}H x {scale}W",
        "preprocess": "y",
    }
