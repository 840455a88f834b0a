"""Benchmark: how long `ferry verify zoo:superres --backends all` takes, and ONNX Runtime vs eager.

Writes ``benchmarks/results/verify_superres.json`` and ``.png``. Ratios are measured in one run,
interleaved, so that machine noise hits every contender alike.

    .venv/bin/python benchmarks/verify_superres.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ferry
from ferry.backends import REGISTRY
from ferry.report import environment
from ferry.superres.pipeline import torch_runner

HERE = Path(__file__).resolve().parent


def _interleaved(contenders: dict[str, object], x: np.ndarray, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for fn in contenders.values():
        fn(x)  # type: ignore[operator]  # warm-up
    for _ in range(repeats):
        for name, fn in contenders.items():
            t = time.perf_counter()
            fn(x)  # type: ignore[operator]
            times[name].append(time.perf_counter() - t)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "sr.onnx"
        t0 = time.perf_counter()
        ferry.export("zoo:superres", onnx_path)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = ferry.verify("zoo:superres", onnx_path, config=ferry.VerifyConfig(backends=("all",)))
        verify_s = time.perf_counter() - t0

        ort = REGISTRY.get("onnxruntime")
        session = ort.load(str(onnx_path), **ort.timing_options())  # no busy-waiting workers between turns
        eager = torch_runner(ferry.load_model("zoo:superres").module)
        sizes = {"224x224": (224, 224), "360x640": (360, 640)}
        latency: dict[str, dict[str, float]] = {}
        for label, (h, w) in sizes.items():
            x = np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
            times = _interleaved(
                {"pytorch eager": eager, "onnxruntime": lambda a: session.run({"input": a})}, x, args.repeats
            )
            latency[label] = {k: statistics.median(v) for k, v in times.items()}

    result = {
        "benchmark": "verify zoo:superres --backends all; onnxruntime vs eager latency",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": environment(),
        "backends": sorted(report.backends),
        "verify_ok": report.ok,
        "verify_seconds": verify_s,
        "export_seconds": export_s,
        "median_latency_seconds": latency,
        "speedup_onnxruntime_vs_eager": {k: v["pytorch eager"] / v["onnxruntime"] for k, v in latency.items()},
    }
    (args.out / "verify_superres.json").write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = list(latency)
    width = 0.38
    for i, name in enumerate(("pytorch eager", "onnxruntime")):
        ax.bar(
            [j + (i - 0.5) * width for j in range(len(labels))],
            [latency[k][name] * 1000 for k in labels],
            width,
            label=name,
        )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("median latency (ms)")
    ax.set_title(f"zoo:superres x3 on {os.cpu_count()} cores (verify --backends all: {verify_s:.1f} s)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "verify_superres.png", dpi=120)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
