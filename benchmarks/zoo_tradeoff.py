"""Speed against quality for the zoo's x3 upscalers: ESPCN (zoo:superres) and the EDSR-style
zoo:superres_edsr, each exported to ONNX and timed on ONNX Runtime and PyTorch eager at 1280x720,
interleaved in one loop (so the ratios come from one run), with the validation gain over bicubic
from each model card.

    python benchmarks/zoo_tradeoff.py [--seconds 20]

Writes benchmarks/results/zoo_tradeoff.json and zoo_tradeoff.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ferry
from ferry import zoo
from ferry.backends import get_backend
from ferry.bench import interleave
from ferry.inspect_ import inspect_model
from ferry.machine import describe, machine

MODELS = ("superres", "superres_edsr")
RESULTS = Path(__file__).with_name("results")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget for the interleaved loop")
    args = parser.parse_args()
    x = np.random.default_rng(0).random((1, 1, 720, 1280), dtype=np.float32)
    runs: dict[str, Any] = {}
    info: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            module = zoo.get(name).build()
            path = Path(tmp) / f"{name}.onnx"
            ferry.export(f"zoo:{name}", path)
            ort = get_backend("onnxruntime")
            session = ort.load(path, **ort.timing_options())
            card = zoo.get(name).card()
            flops = inspect_model(path, inputs=[ferry.parse_input_spec("1,1,720,1280")]).flops
            info[name] = {
                "parameters": sum(p.numel() for p in module.parameters()),
                "gflops_720p": flops.total / 1e9 if flops else None,
                "gain_db": card["validation"]["mean_gain_db"],
                "psnr_db": card["validation"]["mean_psnr_model"],
            }

            def eager(m: torch.nn.Module = module) -> float:
                with torch.inference_mode():
                    start = time.perf_counter()
                    m(torch.from_numpy(x))
                    return time.perf_counter() - start

            def onnx(s: Any = session) -> float:
                return s.run({"input": x}).seconds

            runs[f"{name}/torch"] = eager
            runs[f"{name}/onnxruntime"] = onnx
        times, errors = interleave(runs, seconds=args.seconds, min_runs=5)
    medians = {k: 1e3 * statistics.median(v) for k, v in times.items() if v}
    for name in MODELS:
        info[name]["median_ms_720p"] = {rt: medians[f"{name}/{rt}"] for rt in ("torch", "onnxruntime")}
    base = medians["superres/onnxruntime"]
    result = {
        "machine": machine(),
        "input": [1, 1, 720, 1280],
        "models": info,
        "edsr_vs_espcn_time_ratio_onnxruntime": medians["superres_edsr/onnxruntime"] / base,
        "edsr_vs_espcn_time_ratio_torch": medians["superres_edsr/torch"] / medians["superres/torch"],
        "errors": errors,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "zoo_tradeoff.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(info, RESULTS / "zoo_tradeoff.png")
    print(describe(result["machine"]))
    for name in MODELS:
        m = info[name]
        print(
            f"{name}: {m['parameters']:,} params, gain {m['gain_db']:+.2f} dB,"
            f" ORT {m['median_ms_720p']['onnxruntime']:.0f} ms, eager {m['median_ms_720p']['torch']:.0f} ms at 720p"
        )
    print(f"EDSR / ESPCN time on ONNX Runtime: {result['edsr_vs_espcn_time_ratio_onnxruntime']:.2f}x")


def _plot(info: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, m in info.items():
        ms = m["median_ms_720p"]["onnxruntime"]
        ax.scatter([ms], [m["gain_db"]], s=60)
        ax.annotate(f"zoo:{name}", (ms, m["gain_db"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("ONNX Runtime, 1280x720 Y plane (ms, median)")
    ax.set_ylabel("PSNR gain over bicubic, x3 (dB)")
    ax.set_title("zoo x3 upscalers: speed vs quality")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
