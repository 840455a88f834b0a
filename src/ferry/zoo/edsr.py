"""A small EDSR-style network (Lim et al. 2017) on the Y channel: the zoo's stronger upscaler.

Residual blocks without BatchNorm, a global skip over the body, a pixel-shuffle tail, and the
nearest-neighbour upscale of the input added to the output, so that the network learns only the
detail bicubic-like interpolation misses. It takes and returns the same tensors as ESPCN
(``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``), so every Y-channel tool runs it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ferry.zoo._y_upscaler import YUpscaler


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class EDSRY(YUpscaler):
    """EDSR-style Y-channel upscaler: ``blocks`` residual blocks of ``channels`` features."""

    def __init__(self, upscale_factor: int = 3, channels: int = 32, blocks: int = 8) -> None:
        super().__init__(
            upscale_factor, channels, lambda: nn.Sequential(*[_ResidualBlock(channels) for _ in range(blocks)])
        )
