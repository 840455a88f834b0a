"""Architectures users actually export, built in code, for the conformance suite.

Each entry of ``CASES`` names a class here, its ``--input`` specs and the expected verdict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvBNClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c, 3, padding=1)
        self.b1 = nn.BatchNorm2d(c)
        self.c2 = nn.Conv2d(c, c, 3, padding=1)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(_Res(8), _Res(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class UNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.up_t = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.fuse = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.down1(x)
        b = self.down2(a)
        up = self.up_t(b)
        smooth = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)[:, :8]
        return self.out(F.relu(self.fuse(torch.cat([up + smooth, a], dim=1))))


class TokenTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 100)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(ids)))


class LSTMTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        return self.out(y)


class BiGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 12, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, h = self.gru(x)
        return y, h


class MultiIO(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.img = nn.Conv2d(3, 4, 3, padding=1)
        self.vec = nn.Linear(6, 4)

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.img(image).mean(dim=(2, 3))
        joint = pooled + self.vec(features)
        return {"logits": joint, "probs": joint.softmax(-1), "label": joint.argmax(-1)}


class DepthwiseSE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.Sigmoid()
        )
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.pw(self.dw(x)))
        return y * self.se(y)


class WhereCumsumTopk(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # No zeros, so the running sums are strictly increasing and topk has no ties to break.
        masked = torch.where(x > 0, x, -0.5 * x)
        running = torch.cumsum(masked, dim=-1)
        values, indices = torch.topk(running, k=3, dim=-1)
        return values, indices, running


class EinsumAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(16, 48)
        self.proj = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.einsum("bqd,bkd->bqk", q, k) / 4.0
        manual = torch.einsum("bqk,bkd->bqd", scores.softmax(-1), v)
        fused = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        return self.proj(manual + fused)


class GroupNormNearest(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.silu(self.norm(self.conv(x))))


class BicubicUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=2, mode="bicubic", align_corners=False)


class PixelShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class DataDependentBranch(nn.Module):
    """A branch on the data: traced exports freeze one side of it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        if y.mean() > 0:
            return y.relu()
        return -y


# name -> (input specs, expected verify exit code)
CASES: dict[str, tuple[list[str], int]] = {
    "MLP": (["batch=2,16"], 0),
    "ConvBNClassifier": (["batch=2,3,height=32,width=32"], 0),
    "ResNetTiny": (["batch=1,3,height=32,width=32"], 0),
    "UNetTiny": (["batch=1,1,height=32,width=32"], 0),
    "TokenTransformer": (["batch=2,seq=12:int64:0:100"], 0),
    "LSTMTagger": (["batch=2,seq=7,8"], 0),
    "BiGRU": (["batch=2,seq=7,8"], 0),
    "MultiIO": (["batch=2,3,16,16", "batch=2,6"], 0),
    "DepthwiseSE": (["batch=1,8,height=16,width=16"], 0),
    "WhereCumsumTopk": (["batch=2,10"], 0),
    "EinsumAttention": (["batch=2,seq=9,16"], 0),
    "GroupNormNearest": (["batch=1,4,height=16,width=16"], 0),
    "BicubicUp": (["batch=1,3,height=16,width=16"], 0),
    "PixelShuffleNet": (["batch=1,1,height=16,width=24"], 0),
    "DataDependentBranch": (["3,4"], 2),
}
