"""A small EDSR-style network (Lim et al. 2017) on the Y channel: the zoo's stronger upscaler.

Residual blocks without BatchNorm, a global skip over the body, a pixel-shuffle tail, and the
nearest-neighbour upscale of the input added to the output, so that the network learns only the
detail bicubic-like interpolation misses. It takes and returns the same tensors as ESPCN
(``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``), so every Y-channel tool runs it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class EDSRY(nn.Module):
    """EDSR-style Y-channel upscaler: ``blocks`` residual blocks of ``channels`` features."""

    def __init__(self, upscale_factor: int = 3, channels: int = 32, blocks: int = 8) -> None:
        super().__init__()
        self.scale = upscale_factor
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.body = nn.Sequential(*[_ResidualBlock(channels) for _ in range(blocks)])
        self.fuse = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, upscale_factor**2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        # The tail starts at zero: the untrained network is nearest-neighbour upscaling.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        features = self.fuse(self.body(head)) + head
        nearest = x.repeat(1, self.scale * self.scale, 1, 1)
        return self.pixel_shuffle(self.tail(features) + nearest)
