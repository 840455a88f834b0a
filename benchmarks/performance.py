"""Benchmark: the README's performance table for zoo:superres (x3) on this machine.

1. Runtimes at 1x1x224x224 and 1x1x720x1280: PyTorch eager, every installed runtime on the fp32
   file, and the int8 file from ``ferry optimize --quantize int8``, interleaved in one loop per
   size so that machine noise hits every contender alike. Ratios are against eager from the
   same loop.
2. The runtime ``ferry upscale`` picks by default (``--backend auto``) and how it compares with
   the fastest one measured.
3. End to end, in this process: a folder of 1280x720 photos to 3840x2160 PNGs with ``ferry
   upscale --fast`` (ESPCN, the tutorial's network) against the tutorial's pipeline (PyTorch eager
   + PIL, one image at a time), with the pixel difference between the two. ``end_to_end.py``
   measures it as users run it: fresh processes, start-up included, and the default model too.

Writes ``benchmarks/results/performance.json`` and ``performance.png``.

    .venv/bin/python benchmarks/performance.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import tutorial_pipeline  # benchmarks/tutorial_pipeline.py, beside this script
from PIL import Image

import ferry
from ferry.backends import REGISTRY
from ferry.bench import interleave
from ferry.machine import describe, library_versions, machine
from ferry.superres import datasets
from ferry.superres.runtime_choice import choose_runtime

HERE = Path(__file__).resolve().parent
SIZES = {"224x224": (224, 224), "1280x720": (720, 1280)}


def _contenders(fp32: Path, int8: Path, size: tuple[int, int]) -> dict[str, Any]:
    """name -> (precision, callable(y) running the model once)."""
    module = ferry.load_model("zoo:superres").module.eval()

    def eager(y: np.ndarray) -> None:
        with torch.inference_mode():
            module(torch.from_numpy(y))

    out: dict[str, Any] = {"torch eager": ("fp32", eager)}
    for label, file in (("", fp32), (" int8", int8)):
        for name in ("onnxruntime", "openvino", "openvino-default"):
            backend = REGISTRY.get(name)
            if not backend.available():
                continue
            session = backend.load(os.fspath(file), **backend.timing_options())
            precision = "int8" if label else session.precision
            if name == "openvino-default" and session.precision == "fp32":
                continue
            if label and name == "openvino-default":
                precision = f"int8+{session.precision}"
            key = f"{name}{label}"
            input_name = session.inputs[0].name
            out[key] = (precision, lambda y, s=session, n=input_name: s.run({n: y}))
    executorch = REGISTRY.get("executorch")
    if executorch.available():
        spec = ferry.parse_input_spec(f"1,1,{size[0]},{size[1]}").with_name("input")
        session = executorch.load(module, inputs=[spec], outputs=["output"])  # XNNPACK, lowered at this size
        out["executorch"] = ("fp32", lambda y, s=session: s.run({"input": y}))
    return out


def runtimes(fp32: Path, int8: Path, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, (h, w) in SIZES.items():
        contenders = _contenders(fp32, int8, (h, w))
        y = np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
        for _, fn in contenders.values():
            fn(y)  # warm-up

        def timed(fn: Any, y: np.ndarray = y) -> Any:
            def run() -> float:
                t = time.perf_counter()
                fn(y)
                return time.perf_counter() - t

            return run

        times, _ = interleave({k: timed(fn) for k, (_, fn) in contenders.items()}, seconds=seconds, min_runs=5)
        eager = float(np.median(times["torch eager"]))
        results[label] = {
            name: {
                "precision": contenders[name][0],
                "median_ms": 1e3 * float(np.median(t)),
                "runs": len(t),
                "speedup_vs_eager": eager / float(np.median(t)),
            }
            for name, t in times.items()
        }
    return results


def end_to_end(photos: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        src, a, b = Path(tmp) / "in", Path(tmp) / "tutorial", Path(tmp) / "ferry"
        for folder in (src, a, b):
            folder.mkdir()
        pool = datasets.training_images() + datasets.validation_images()
        for k in range(photos):
            name, img = pool[k % len(pool)]
            img.convert("RGB").resize((1280, 720), Image.Resampling.BICUBIC).save(src / f"{k:02d}_{name}.png")
        espcn = ferry.UpscaleConfig(fast=True)  # the tutorial's network: the same work on both sides
        ferry.upscale(next(src.glob("*.png")), Path(tmp) / "warm.png", espcn)  # the auto choice is made once, here
        t = time.perf_counter()
        tutorial_pipeline.main(src, a)  # the same script end_to_end.py runs in its own process
        tutorial_s = time.perf_counter() - t
        t = time.perf_counter()
        result = ferry.upscale(src, b, espcn)
        ferry_s = time.perf_counter() - t
        same_png = Path(tmp) / "ferry-png6"
        t = time.perf_counter()
        ferry.upscale(src, same_png, ferry.UpscaleConfig(fast=True, png_compression=6))
        ferry_png6_s = time.perf_counter() - t
        diffs = []
        for path in sorted(a.glob("*.png")):
            ours = np.asarray(Image.open(b / path.name), np.int16)
            diffs.append(np.abs(np.asarray(Image.open(path), np.int16) - ours).ravel())
        d = np.concatenate(diffs)
        return {
            "photos": photos,
            "input": "1280x720",
            "output": "3840x2160 PNG",
            "tutorial_seconds": tutorial_s,
            "ferry_seconds": ferry_s,
            "throughput_ratio": tutorial_s / ferry_s,
            "ferry_seconds_png_level_6": ferry_png6_s,
            "throughput_ratio_png_level_6": tutorial_s / ferry_png6_s,
            "ferry_runtime": result.runtime,
            "max_abs_diff": int(d.max()),
            "within_1_level": float((d <= 1).mean()),
            "mean_abs_diff": float(d.mean()),
        }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SIZES), figsize=(6 * len(SIZES), 4), sharey=False)
    for ax, (label, rows) in zip(axes, results["runtimes"].items(), strict=True):
        names = sorted(rows, key=lambda n: rows[n]["speedup_vs_eager"])
        ax.barh(
            [f"{n} ({rows[n]['precision']})" for n in names],
            [rows[n]["speedup_vs_eager"] for n in names],
            color=["#c77c2b" if n == "torch eager" else "#4a7bd0" for n in names],
        )
        h, w = SIZES[label]
        ax.set_title(f"zoo:superres x3, 1x1x{h}x{w} input")
        ax.set_xlabel("speed vs PyTorch eager (x)")
        for i, n in enumerate(names):
            ax.text(rows[n]["speedup_vs_eager"], i, f" {rows[n]['speedup_vs_eager']:.1f}x", va="center", fontsize=8)
    fig.suptitle(describe(results["machine"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="timing budget per input size")
    parser.add_argument("--photos", type=int, default=8, help="1280x720 photos in the end-to-end run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FERRY_CACHE_DIR", str(Path(tmp) / "cache"))
        fp32 = Path(tmp) / "sr.onnx"
        ferry.export("zoo:superres", fp32)
        opt = ferry.optimize(fp32, Path(tmp) / "sr_int8.onnx", ferry.OptimizeConfig(quantize="int8"))
        choice = choose_runtime(fp32)
        results: dict[str, Any] = {
            "machine": machine(),
            "versions": library_versions(),
            "runtimes": runtimes(fp32, opt.output, args.seconds),
            "int8": {
                "psnr_fp32_db": opt.gate.details["psnr_original_db"],
                "psnr_int8_db": opt.gate.details["psnr_optimized_db"],
                "psnr_drop_db": opt.gate.value,
                "kept_float": opt.kept_float,
            },
            "auto_choice": {
                "backend": choice.backend,
                "precision": choice.precision,
                "candidates": [c.__dict__ for c in choice.candidates],
            },
        }
        results["end_to_end"] = end_to_end(args.photos)
    for label, rows in results["runtimes"].items():
        fp32_rows = {n: r for n, r in rows.items() if r["precision"] == "fp32" and n != "torch eager"}
        best_fp32 = max(fp32_rows, key=lambda n: fp32_rows[n]["speedup_vs_eager"])
        fastest = max(rows, key=lambda n: rows[n]["speedup_vs_eager"])
        auto = next(
            (n for n, r in rows.items() if n.split(" ")[0] == choice.backend and r["precision"] == choice.precision),
            None,
        )
        passing = {(c.backend, c.precision) for c in choice.candidates if c.verified}
        verified = [n for n, r in rows.items() if (n.split(" ")[0], r["precision"]) in passing]
        fastest_verified = max(verified, key=lambda n: rows[n]["speedup_vs_eager"])
        results.setdefault("summary", {})[label] = {
            "best_fp32": best_fp32,
            "best_fp32_vs_eager": rows[best_fp32]["speedup_vs_eager"],
            "fastest": fastest,
            "fastest_vs_eager": rows[fastest]["speedup_vs_eager"],
            "auto": auto,
            "auto_vs_eager": rows[auto]["speedup_vs_eager"] if auto else None,
            "auto_vs_fastest": rows[auto]["speedup_vs_eager"] / rows[fastest]["speedup_vs_eager"] if auto else None,
            "fastest_verified": fastest_verified,
            "auto_vs_fastest_verified": (
                rows[auto]["speedup_vs_eager"] / rows[fastest_verified]["speedup_vs_eager"] if auto else None
            ),
            "int8_ort_vs_fp32_ort": rows["onnxruntime int8"]["speedup_vs_eager"]
            / rows["onnxruntime"]["speedup_vs_eager"],
        }
    (args.out / "performance.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "performance.png")
    print(
        json.dumps(
            {"summary": results["summary"], "end_to_end": results["end_to_end"], "int8": results["int8"]}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
