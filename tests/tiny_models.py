"""Tiny models built in code for the tests (loaded as ``tests/tiny_models.py:Class``)."""

from __future__ import annotations

import torch
from torch import nn


class TinyConv(nn.Module):
    """Conv + BatchNorm + Dropout: differs between train and eval mode."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Conv2d(channels, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))))


class TwoInTwoOut(nn.Module):
    """Two inputs (float image, int64 ids) and a dict of two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        e = self.emb(ids).mean(dim=1)
        return {"score": self.lin(x) + e, "argmax": torch.argmax(e, dim=-1)}


class SignBranch(nn.Module):
    """Data-dependent control flow: torch.export refuses it, tracing freezes one branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def make_mlp(hidden: int = 8) -> nn.Module:
    """A factory: MLP with LayerNorm and GELU."""
    return nn.Sequential(nn.Linear(6, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, 3))


class UpNet(nn.Module):
    """Conv, bilinear upsampling, conv: a resize whose mode matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.up(torch.relu(self.conv(x))))
