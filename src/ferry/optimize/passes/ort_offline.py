"""ONNX Runtime's offline optimizations (``basic``/``extended``; ``all`` would add layouts for this CPU)."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.optimize.passes import PassResult, running


def ort_offline(src: Path, dst: Path, level: str) -> PassResult:
    """ONNX Runtime's offline graph optimizations at ``level`` (basic, extended), saved as ONNX."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    so.optimized_model_filepath = os.fspath(dst)
    with running("ONNX Runtime's offline optimizer", "try --level none"):
        ort.InferenceSession(os.fspath(src), so, providers=["CPUExecutionProvider"])
    return PassResult(dst, f"onnxruntime-{level}")
