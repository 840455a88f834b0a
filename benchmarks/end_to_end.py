"""Benchmark: eight 1280x720 photos to 3840x2160 PNGs, each run a fresh process, as users run it.

Contenders (each a new process: start-up, imports, model loading and writing included):

- ``tutorial``: the PyTorch tutorial's pipeline (``benchmarks/tutorial_pipeline.py``: ESPCN in
  PyTorch eager, PIL's YCbCr split, bicubic chroma and merge, one image at a time);
- ``ferry upscale --fast``: the same ESPCN weights through ferry;
- ``ferry upscale``: ferry's default, the strongest x3 zoo model.

Rounds are interleaved (the order rotates from round to round) so that machine noise hits every
contender alike; each contender's median wall time gives the throughput ratios to the tutorial
from the same run. ferry's runtime choice is made (and cached) before the timed rounds, as it is
on every run after a user's first; the first run itself is measured separately: ``ferry upscale``
of one 640x480 photo with an empty cache, the runtime choice included.

Writes ``benchmarks/results/end_to_end.json`` and ``end_to_end.png``.

    .venv/bin/python benchmarks/end_to_end.py            # about five minutes on 2 cores
    .venv/bin/python benchmarks/end_to_end.py --rounds 1 --photos 2   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
FERRY = [sys.executable, "-m", "ferry"]


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` photos of ``size`` from scikit-image's images (the core install has them)."""
    from ferry.images import open_bundled

    names = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "brick.png")
    for k in range(count):
        name, img = open_bundled("skimage", names[k % len(names)])
        img.resize(size, Image.Resampling.BICUBIC).save(folder / f"{k:02d}_{name}.png")


def contenders(src: Path, out: Path) -> dict[str, list[str]]:
    tutorial = [sys.executable, str(HERE / "tutorial_pipeline.py"), str(src), str(out / "tutorial")]
    return {
        "tutorial (PyTorch eager + PIL)": tutorial,
        "ferry upscale --fast": [*FERRY, "upscale", str(src), "-o", str(out / "fast"), "--fast", "--overwrite"],
        "ferry upscale": [*FERRY, "upscale", str(src), "-o", str(out / "default"), "--overwrite"],
    }


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def first_run(env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """``ferry upscale`` of a 640x480 photo with an empty cache: export and runtime choice included."""
    photo = tmp / "first" / "photo.png"
    photo.parent.mkdir()
    make_photos(photo.parent, 1, (640, 480))
    cold = {**env, "FERRY_CACHE_DIR": str(tmp / "cold-cache")}
    cmd = [*FERRY, "upscale", str(next(photo.parent.glob("*.png"))), "-o", str(tmp / "first-x3.png"), "--json", "-"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=cold, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    result = json.loads(done.stdout)
    return {"photo": "640x480", "seconds": seconds, "model": result["model"], "runtime": result["runtime"]}


def pixel_diff(a: Path, b: Path) -> dict[str, float]:
    diffs = [
        np.abs(np.asarray(Image.open(p), np.int16) - np.asarray(Image.open(b / p.name), np.int16)).ravel()
        for p in sorted(a.glob("*.png"))
    ]
    d = np.concatenate(diffs)
    return {"max_abs_diff": int(d.max()), "within_1_level": float((d <= 1).mean())}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ferry.machine import describe

    rows = results["contenders"]
    names = list(rows)
    ratios = [rows[n]["throughput_vs_tutorial"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(names, ratios, color=["#c77c2b" if n.startswith("tutorial") else "#4a7bd0" for n in names])
    for i, r in enumerate(ratios):
        ax.text(r, i, f" {r:.2f}x", va="center", fontsize=9)
    ax.set_xlabel("throughput vs the tutorial pipeline (x), fresh process each")
    ax.set_title(f"{results['photos']} photos 1280x720 -> 3840x2160 PNG", fontsize=10)
    fig.suptitle(describe(results["machine"]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8, help="1280x720 photos per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median of each contender)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    from ferry.bench._noise import read_load
    from ferry.machine import library_versions, machine

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = {**os.environ, "FERRY_CACHE_DIR": str(tmp / "cache"), "COLUMNS": "120"}
        first = first_run(env, tmp)
        src, out = tmp / "in", tmp / "out"
        src.mkdir()
        make_photos(src, args.photos, (1280, 720))
        runs = contenders(src, out)
        for key in ("tutorial", "fast", "default"):
            (out / key).mkdir(parents=True)
        # the runtime choice of both ferry models, made and cached once, as after a user's first run
        for cmd in list(runs.values())[1:]:
            timed([*cmd[:4], str(next(src.glob("*.png"))), "-o", str(tmp / "warm.png"), *cmd[7:]], env)
        times: dict[str, list[float]] = {n: [] for n in runs}
        load_before = read_load()
        for r in range(args.rounds):
            order = list(runs)[r % len(runs) :] + list(runs)[: r % len(runs)]
            for n in order:
                times[n].append(timed(runs[n], env))
                print(f"round {r + 1}: {n}: {times[n][-1]:.2f} s", flush=True)
        tutorial = statistics.median(times["tutorial (PyTorch eager + PIL)"])
        results: dict[str, Any] = {
            "machine": machine(),
            "versions": library_versions(),
            "photos": args.photos,
            "input": "1280x720 PNG",
            "output": "3840x2160 PNG",
            "rounds": args.rounds,
            "load_average_before": load_before,
            "contenders": {
                n: {
                    "command": " ".join(Path(c).name if os.sep in c else c for c in runs[n]),
                    "seconds": t,
                    "median_seconds": statistics.median(t),
                    "throughput_vs_tutorial": tutorial / statistics.median(t),
                }
                for n, t in times.items()
            },
            "fast_vs_tutorial_pixels": pixel_diff(out / "tutorial", out / "fast"),
            "first_run": first,
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "end_to_end.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "end_to_end.png")
    for n, row in results["contenders"].items():
        print(f"{n:32s} {row['median_seconds']:7.2f} s  {row['throughput_vs_tutorial']:5.2f}x the tutorial")
    print(
        f"first run, 640x480, empty cache: {first['seconds']:.1f} s ({first['model']}, {first['runtime']['backend']})"
    )
    shutil.rmtree(tmp / "out", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
