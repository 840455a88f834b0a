"""ONNX -> ORT format (ONNX Runtime Mobile), with ONNX Runtime's own conversion tool."""

from __future__ import annotations

import shutil
from pathlib import Path

from ferry.convert import quietly
from ferry.errors import UnsupportedModelError


def ort_from_onnx(onnx_path: Path, folder: Path) -> tuple[Path, Path]:
    """Convert an ONNX file to the ORT format with ONNX Runtime's own tool (optimizations fixed
    for ARM, operator types reduced); returns the ``.ort`` file and the operator config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    work = folder / "ort-work"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "model.onnx"
    shutil.copyfile(onnx_path, src)
    out = work / "out"
    quietly(
        lambda: convert_onnx_models_to_ort(
            src,
            out,
            optimization_styles=[OptimizationStyle.Fixed],
            target_platform="arm",  # phones; the optimized graph stays portable to x86
            enable_type_reduction=True,
        )
    )
    ort_files = list(out.glob("*.ort"))
    configs = list(out.glob("*.config"))
    if not ort_files or not configs:
        raise UnsupportedModelError("ONNX Runtime could not convert the model to the ORT format")
    return ort_files[0], configs[0]
