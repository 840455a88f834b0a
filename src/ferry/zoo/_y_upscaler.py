"""The frame the zoo's residual Y-channel upscalers share (EDSR-style, SPAN-style): a head
convolution, a body of blocks, a fusing convolution with a skip from the head, a pixel-shuffle
tail, and the nearest-neighbour upscale of the input added to the output, so that the network
learns only the detail interpolation misses. They take and return the same tensors as ESPCN
(``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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


def widen(module: YUpscaler, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state for ``module`` that computes exactly what ``state``, the same network with fewer
    feature channels, computes; the added channels then train from there (Net2Net-style growth).

    Each tensor of ``state`` goes into the leading corner of the module's own (freshly
    initialised) tensor. The added channels keep their fresh weights from every input, so they
    carry signal from the first step, and the weights from them into the old channels and the
    tail start at zero, so they change nothing until training grows them. This holds for both
    block types (``(f + x) * tanh(f)`` and residual blocks): every old channel sees only old
    channels.

    Raises:
        ValueError: a missing key, or a tensor larger than the module's in any dimension or of
            another rank.
    """
    own = module.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, mine in own.items():
        if key not in state:
            raise ValueError(f"no tensor {key!r}")
        old = state[key]
        if old.dim() != mine.dim() or any(o > m for o, m in zip(old.shape, mine.shape, strict=True)):
            raise ValueError(f"{key!r} is {tuple(old.shape)}, not a narrower {tuple(mine.shape)}")
        grown = mine.detach().clone()
        corner = tuple(slice(0, n) for n in old.shape)
        grown[corner] = old.to(grown.dtype)
        if grown.dim() == 4:  # convolution: no path from an added input channel into an old output
            grown[: old.shape[0], old.shape[1] :] = 0
        out[key] = grown
    return out
