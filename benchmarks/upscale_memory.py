"""Benchmark: peak memory (RSS) of `ferry upscale` on a 4000x3000 photo, whole-image vs tiled.

Each configuration runs in its own process so that its peak RSS is its own. Writes
``benchmarks/results/upscale_memory.json`` and ``.png``.

    .venv/bin/python benchmarks/upscale_memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ferry.report import environment

HERE = Path(__file__).resolve().parent

_CHILD = """
import resource, sys, time
import ferry
from ferry.superres.upscale import UpscaleConfig
start = time.perf_counter()
result = ferry.upscale(sys.argv[1], sys.argv[2], UpscaleConfig(tile=int(sys.argv[3]), overwrite=True))
seconds = time.perf_counter() - start
assert result, result.to_dict()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, seconds)
"""


def _photo(path: Path, width: int, height: int) -> None:
    """A synthetic photo: smooth gradients plus texture, so the network has work to do."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 128 + 60 * np.sin(xx / 97.0) * np.cos(yy / 61.0)
    rgb = np.stack([base, base * 0.8 + 30, 255 - base], axis=-1) + rng.normal(0, 12, (height, width, 3))
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--tiles", default="0,1024,512,256", help="tile sizes to compare (0: whole image)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.png"
        _photo(src, args.width, args.height)
        for tile in (int(t) for t in args.tiles.split(",")):
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(src), str(Path(tmp) / "out.png"), str(tile)],
                capture_output=True,
                text=True,
                check=True,
            )
            rss, seconds = done.stdout.split()
            runs.append({"tile": tile, "peak_rss_mib": int(rss) / 2**20, "seconds": float(seconds)})
            print(runs[-1], flush=True)
    result = {
        "benchmark": f"ferry upscale x3 of a {args.width}x{args.height} photo, peak RSS per tile size",
        "machine": {"cores": os.cpu_count()},
        "versions": environment(),
        "output_size": [args.width * 3, args.height * 3],
        "runs": runs,
    }
    (args.out / "upscale_memory.json").write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = ["whole" if r["tile"] == 0 else str(r["tile"]) for r in runs]
    ax.bar(labels, [r["peak_rss_mib"] for r in runs], color="#4a7bd0")
    ax.set_xlabel("tile size (input pixels)")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title(f"ferry upscale x3, {args.width}x{args.height} photo")
    fig.tight_layout()
    fig.savefig(args.out / "upscale_memory.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
