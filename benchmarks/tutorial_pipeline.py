"""The PyTorch super-resolution tutorial's pipeline, as a script: the baseline of
``benchmarks/end_to_end.py``.

Every ``.png`` of IN is upscaled x3 one at a time, as the tutorial does: PIL splits YCbCr, the Y
plane goes through ``SuperResolutionNet`` in PyTorch eager, Cb and Cr are upscaled bicubically,
the planes are merged, converted to RGB and saved with PIL's defaults. The network is the
tutorial's class, written out here, with ferry's trained x3 weights (the tutorial downloads its
own; there is no network here). Nothing of ferry is imported, so the process pays only for what
the tutorial uses.

    python benchmarks/tutorial_pipeline.py IN OUT
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import nn


class SuperResolutionNet(nn.Module):
    """The tutorial's network (Shi et al. 2016)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv1 = nn.Conv2d(1, 64, (5, 5), (1, 1), (2, 2))
        self.conv2 = nn.Conv2d(64, 64, (3, 3), (1, 1), (1, 1))
        self.conv3 = nn.Conv2d(64, 32, (3, 3), (1, 1), (1, 1))
        self.conv4 = nn.Conv2d(32, upscale_factor**2, (3, 3), (1, 1), (1, 1))
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = self.relu(self.conv3(x))
        return self.pixel_shuffle(self.conv4(x))


def weights() -> Path:
    """ferry's x3 ESPCN weights, found without importing ferry."""
    spec = importlib.util.find_spec("ferry")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "zoo" / "weights" / "superres_x3.safetensors"


def main(src: Path, dst: Path) -> None:
    model = SuperResolutionNet(upscale_factor=3)
    model.load_state_dict(load_file(weights()))
    model.eval()
    for path in sorted(src.glob("*.png")):
        img = Image.open(path)
        y, cb, cr = img.convert("YCbCr").split()
        x = torch.from_numpy(np.asarray(y, dtype=np.float32) / 255.0)[None, None]
        with torch.no_grad():
            out = model(x)[0, 0].numpy()
        out_y = Image.fromarray(np.uint8(np.clip(out * 255.0, 0, 255).round()), "L")
        merged = Image.merge(
            "YCbCr",
            [out_y, cb.resize(out_y.size, Image.Resampling.BICUBIC), cr.resize(out_y.size, Image.Resampling.BICUBIC)],
        ).convert("RGB")
        merged.save(dst / path.name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
