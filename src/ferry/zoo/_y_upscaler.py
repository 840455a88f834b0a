"""The frame the zoo's residual Y-channel upscalers share (EDSR-style, SPAN-style): a head
convolution, a body of blocks, a fusing convolution with a skip from the head, a pixel-shuffle
tail, and the nearest-neighbour (or bicubic) upscale of the input added to the output, so that
the network learns only the detail interpolation misses. They take and return the same tensors
as ESPCN (``N x 1 x H x W`` Y in [0, 1] -> ``N x 1 x sH x sW``)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


class YUpscaler(nn.Module):
    """``head -> body -> fuse (+ head) -> tail -> pixel shuffle``, plus the upscaled input.

    Args:
        upscale_factor: 2, 3 or 4.
        channels: feature channels.
        make_body: builds the blocks, ``channels`` in and out (called after the head is made,
            so that a seed initialises the layers in the order they run).
        base: ``nearest`` (the untrained network is nearest-neighbour upscaling) or ``bicubic``
            (PyTorch's bicubic, :func:`bicubic_phases`).
    """

    bicubic: torch.Tensor | None

    def __init__(
        self, upscale_factor: int, channels: int, make_body: Callable[[], nn.Module], base: str = "nearest"
    ) -> None:
        super().__init__()
        if base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, not {base!r}")
        self.scale = upscale_factor
        self.head = nn.Conv2d(1, channels, 3, padding=1)
        self.body = make_body()
        self.fuse = nn.Conv2d(channels, channels, 3, padding=1)
        self.tail = nn.Conv2d(channels, upscale_factor**2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        # The tail starts at zero: the untrained network is its base upscaling.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]  # Conv2d has a bias by default
        # Not in the state dict: fixed, not learned.
        self.register_buffer("bicubic", bicubic_phases(upscale_factor) if base == "bicubic" else None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        features = self.fuse(self.body(head)) + head
        if self.bicubic is None:
            upscaled = x.repeat(1, self.scale * self.scale, 1, 1)  # nearest neighbour, phase by phase
        else:
            # The base carries the whole image: in bfloat16 it would be off by up to a grey level,
            # and training under autocast would learn to undo an error fp32 inference never makes.
            # (Outside autocast no context at all: nothing for the exporters to trace.)
            autocast = torch.is_autocast_enabled(x.device.type)
            with torch.autocast(x.device.type, enabled=False) if autocast else contextlib.nullcontext():
                upscaled = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.bicubic)
        return self.pixel_shuffle(self.tail(features) + upscaled)


#: What the network's output is added to: ``nearest`` (the input repeated) or ``bicubic``.
BASES = ("nearest", "bicubic")


def _cubic(x: float, a: float = -0.75) -> float:
    """The cubic convolution kernel (Keys 1981) with PyTorch's ``a = -0.75``."""
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def bicubic_phases(scale: int) -> torch.Tensor:
    """PyTorch's bicubic upscaling (``align_corners=False``) by ``scale`` as one convolution:
    ``scale**2 x 1 x 5 x 5`` weights, one output channel per sub-pixel phase, for a pixel shuffle.
    With the input padded by 2 replicated pixels it equals ``F.interpolate(mode="bicubic")``,
    borders included, and costs a 1-channel 5x5 convolution (ONNX Runtime's cubic Resize takes
    as long as the whole SPAN-style network)."""
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for phase in range(scale):
        u = (phase + 0.5) / scale - 0.5  # where the output pixel falls between input pixels
        k = math.floor(u)
        for offset in range(k - 1, k + 3):
            taps[phase, offset + 2] += _cubic(u - offset)
    return torch.einsum("pi,qj->pqij", taps, taps).reshape(scale * scale, 1, 5, 5).float()


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
