"""ONNX Runtime's offline optimizations (``basic``/``extended``; ``all`` would add layouts for this CPU)."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.errors import UserError
from ferry.optimize.passes import PassResult


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
    try:
        ort.InferenceSession(os.fspath(src), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"ONNX Runtime cannot optimize the model: {' '.join(str(exc).split())[:400]}") from exc
    return PassResult(dst, f"onnxruntime-{level}")
