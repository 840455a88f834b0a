"""The whole super-resolution pipeline as one graph: uint8 RGB in, uint8 RGB out (``--rgb-io``).

PIL's fixed-point YCbCr conversion and its two-pass bicubic resize are rebuilt from torch ops so
that an app hands the model a decoded image's bytes and gets the upscaled image back.
"""

from __future__ import annotations

import torch
from torch import nn

from ferry.errors import UserError
from ferry.models import LoadedModel
from ferry.preprocessing import rgb_uint8
from ferry.specs import parse_input_spec


def _pil_bicubic_taps(scale: int) -> torch.Tensor:
    """1-D weights of PIL's bicubic (a = -0.5) for an integer upscale, one row per output phase.

    Output pixel ``scale * i + p`` sits at input coordinate ``i + (p + 0.5) / scale - 0.5``;
    taps cover input offsets -2..2 around ``i``.
    """

    def cubic(x: float) -> float:
        a, x = -0.5, abs(x)
        if x < 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        if x < 2:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    rows = [[cubic(k + 0.5 - (p + 0.5) / scale) for k in range(-2, 3)] for p in range(scale)]
    return torch.tensor(rows, dtype=torch.float32)


def _table(coef: float, offset: int = 0, *, trunc: bool = False) -> torch.Tensor:
    """PIL-style 6-bit fixed-point lookup table: ``coef * 64 * (v - offset)`` for v in 0..255."""
    values = torch.arange(256, dtype=torch.float64) - offset
    scaled = coef * 64 * values
    return (torch.trunc(scaled) if trunc else torch.round(scaled)).to(torch.int32)


class RGBSuperResolution(nn.Module):
    """The whole tutorial pipeline in one graph: uint8 ``H x W x 3`` RGB in, uint8
    ``sH x sW x 3`` RGB out.

    Colour conversions use PIL's 6-bit fixed-point lookup tables (Y exactly as PIL computes
    it; Cb, Cr and the merge back to RGB within one level), the Y channel goes through ``net``,
    Cb/Cr are upscaled with PIL's bicubic filter (weights renormalised over the taps inside the
    image, as PIL does at the borders). What a phone or browser app ships.
    """

    # Buffers registered in __init__: the bicubic taps and the colour lookup tables.
    bicubic: torch.Tensor
    y_r: torch.Tensor
    y_g: torch.Tensor
    y_b: torch.Tensor
    cb_r: torch.Tensor
    cb_g: torch.Tensor
    cb_b: torch.Tensor
    cr_r: torch.Tensor
    cr_g: torch.Tensor
    cr_b: torch.Tensor
    r_cr: torch.Tensor
    g_cb: torch.Tensor
    g_cr: torch.Tensor
    b_cb: torch.Tensor

    def __init__(self, net: nn.Module, scale: int) -> None:
        super().__init__()
        self.net = net
        self.scale = scale
        # PIL resizes in two passes (columns, then rows), rounding to 8 bits in between.
        self.register_buffer("bicubic", _pil_bicubic_taps(scale).reshape(scale, 1, 1, 5))
        tables = {
            "y_r": _table(0.299),
            "y_g": _table(0.587),
            "y_b": _table(0.114),
            "cb_r": _table(-0.16874, trunc=True),
            "cb_g": _table(-0.33126, trunc=True),
            "cb_b": _table(0.5, trunc=True),
            "cr_r": _table(0.5, trunc=True),
            "cr_g": _table(-0.41869, trunc=True),
            "cr_b": _table(-0.08131, trunc=True),
            "r_cr": _table(1.402, 128, trunc=True),
            "g_cb": _table(-0.34414, 128, trunc=True),
            "g_cr": _table(-0.71414, 128, trunc=True),
            "b_cb": _table(1.772, 128, trunc=True),
        }
        for name, table in tables.items():
            self.register_buffer(name, table)

    def _resize_rows(self, plane: torch.Tensor) -> torch.Tensor:
        """Upscale the last axis of a (1, 1, H, W) plane, as one PIL pass, rounded to 8 bits."""
        h, w = plane.shape[-2], plane.shape[-1]
        value = nn.functional.conv2d(plane, self.bicubic, padding=(0, 2))
        weight = nn.functional.conv2d(torch.ones_like(plane), self.bicubic, padding=(0, 2))
        phased = torch.floor(value / weight + 0.5).clamp(0, 255)  # (1, s, H, W)
        return phased.permute(0, 2, 3, 1).reshape(1, 1, h, w * self.scale)

    def _upscale_chroma(self, plane: torch.Tensor) -> torch.Tensor:
        wide = self._resize_rows(plane)
        return self._resize_rows(wide.transpose(2, 3)).transpose(2, 3).to(torch.int64)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        idx = rgb.to(torch.int64)
        r, g, b = idx[..., 0], idx[..., 1], idx[..., 2]
        y = torch.div(self.y_r[r] + self.y_g[g] + self.y_b[b], 64, rounding_mode="floor")
        cb = torch.div(self.cb_r[r] + self.cb_g[g] + self.cb_b[b], 64, rounding_mode="floor") + 128
        cr = torch.div(self.cr_r[r] + self.cr_g[g] + self.cr_b[b], 64, rounding_mode="floor") + 128
        planes = torch.stack([y, cb.clamp(0, 255), cr.clamp(0, 255)]).unsqueeze(1).to(torch.float32)
        y_up = torch.round((self.net(planes[0:1] / 255.0) * 255.0).clamp(0, 255)).to(torch.int64)[0, 0]
        cb_up = self._upscale_chroma(planes[1:2])[0, 0]
        cr_up = self._upscale_chroma(planes[2:3])[0, 0]
        red = y_up + torch.div(self.r_cr[cr_up], 64, rounding_mode="floor")
        green = y_up + torch.div(self.g_cb[cb_up] + self.g_cr[cr_up], 64, rounding_mode="floor")
        blue = y_up + torch.div(self.b_cb[cb_up], 64, rounding_mode="floor")
        return torch.stack([red, green, blue], dim=-1).clamp(0, 255).to(torch.uint8)


RGB_IO = "rgb-uint8"


def rgb_io_model(model: LoadedModel) -> LoadedModel:
    """Wrap a Y-channel super-resolution model into the uint8 RGB-in, RGB-out pipeline graph.

    Raises:
        UserError: for a model that is not a Y-channel super-resolution zoo model.
    """
    if model.task.get("io") == RGB_IO:
        return model
    if model.task.get("kind") != "super-resolution" or not model.inputs or model.inputs[0].shape[1] != 1:
        raise UserError(f"--rgb-io needs a Y-channel super-resolution model such as zoo:superres, not {model.source}")
    scale = int(model.task["scale"])
    return LoadedModel(
        module=RGBSuperResolution(model.module, scale).eval(),
        source=model.source,
        inputs=(parse_input_spec("height=224,width=224,3:uint8:0:256").with_name("rgb"),),
        outputs=("upscaled",),
        tolerance=model.tolerance,
        task={
            **model.task,
            "io": RGB_IO,
            "colour": "uint8 RGB in and out; full-range BT.601 YCbCr (PIL) and bicubic chroma inside the graph",
            "input_layout": "H x W x 3 uint8 RGB",
            "output_layout": f"{scale}H x {scale}W x 3 uint8 RGB",
            "preprocess": "rgb-uint8",
        },
        preprocess=rgb_uint8,
        weights=model.weights,
        # The graph rounds Y, Cb and Cr to 8 bits before merging: a runtime whose float result
        # lands on the other side of .5 moves Y by 1 and blue by up to 2 (1.772 x Cb).
        output_tolerances={"upscaled": (0.0, 2.0)},
    )
