"""ESPCN (Shi et al. 2016) as written in PyTorch's super-resolution export tutorial.

Parameter names match the tutorial's ``SuperResolutionNet`` so its state dicts load as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import init

from ferry.zoo._tasks import superres_y_task

#: the task metadata of an ESPCN for a scale (torch-free in :mod:`ferry.zoo._tasks`)
task = superres_y_task


TASK: dict[str, Any] = task(3)


class SuperResolutionNet(nn.Module):
    """Four convolutions and a pixel shuffle: upscales a 1-channel image by ``upscale_factor``."""

    def __init__(self, upscale_factor: int = 3, inplace: bool = False) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=inplace)
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)
        self._initialize_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.pixel_shuffle(self.conv4(x))

    def _initialize_weights(self) -> None:
        init.orthogonal_(self.conv1.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv2.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv3.weight, init.calculate_gain("relu"))
        init.orthogonal_(self.conv4.weight)
