"""A SPAN-style network (Wan et al. 2024, "Swift Parameter-free Attention Network") on the Y channel.

SPAN won the NTIRE 2024 efficient super-resolution challenge on runtime. Its blocks are plain
3x3 convolutions followed by an attention map computed from the features themselves, so the
attention costs no parameters, only element-wise operators. This version reads and writes the
same tensors as ESPCN (``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``) and is shaped for
ONNX Runtime on CPUs, where SPAN's original form spends a third of its time converting layouts:

- The attention is ``tanh(f)``, which is SPAN's ``sigmoid(f) - 0.5`` up to a factor of 2 in
  ``f``: without the scalar subtraction ONNX Runtime keeps every operator in its blocked
  (NCHWc) layout, with no reorders between convolutions.
- No concatenation of intermediate features: a global skip from the head instead (as in EDSR
  and RLFN), which saves a layout reorder and a 1x1 convolution over four feature maps.
- LeakyReLU instead of SiLU (fused into the convolutions), and no re-parameterised training
  branches (plain convolutions train faster on a CPU).
- The nearest-neighbour upscale of the input is added to the output, so the network learns only
  the detail interpolation misses, and the untrained network is exactly nearest-neighbour.
"""

from __future__ import annotations

import torch
from torch import nn

from ferry.zoo._y_upscaler import YUpscaler


class _AttentionBlock(nn.Module):
    """Three 3x3 convolutions ``f``, then parameter-free attention: ``(f + x) * tanh(f)``."""

    def __init__(self, channels: int, slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return (f + x) * torch.tanh(f)


class SPANY(YUpscaler):
    """SPAN-style Y-channel upscaler: ``blocks`` attention blocks of ``channels`` features.

    Args:
        upscale_factor: 2, 3 or 4 (pixel-shuffle tail).
        channels: feature channels (a multiple of 16 suits ONNX Runtime's blocked layout).
        blocks: attention blocks.
        slope: negative slope of the LeakyReLU activations.
        base: what the output is added to: ``nearest`` or ``bicubic`` upscaling of the input.
    """

    def __init__(
        self,
        upscale_factor: int = 3,
        channels: int = 32,
        blocks: int = 4,
        slope: float = 0.05,
        base: str = "nearest",
    ) -> None:
        super().__init__(
            upscale_factor,
            channels,
            lambda: nn.Sequential(*[_AttentionBlock(channels, slope) for _ in range(blocks)]),
            base=base,
        )
