"""The frame the zoo's residual Y-channel upscalers share (EDSR-style, SPAN-style): a head
convolution, a body of blocks, a fusing convolution with a skip from the head, a pixel-shuffle
tail, and the nearest-neighbour upscale of the input added to the output, so that the network
learns only the detail interpolation misses. They take and return the same tensors as ESPCN
(``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class YUpscaler(nn.Module):
    """``head -> body -> fuse (+ head) -> tail -> pixel shuffle``, plus the nearest upscale of the input.

    Args:
        upscale_factor: 2, 3 or 4.
        channels: feature channels.
        make_body: builds the blocks, ``channels`` in and out (called after the head is made,
            so that a seed initialises the layers in the order they run).
    """

    def __init__(self, upscale_factor: int, channels: int, make_body: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.scale = upscale_factor
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.body = make_body()
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
