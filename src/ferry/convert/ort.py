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


def required_operators(config: Path) -> list[str]:
    """The operators an ORT-format operator config names, sorted (those of every domain and opset).

    A config line is ``domain;opsets;Op1{types},Op2,...``: several operators a line, each with
    optional JSON type information (which holds commas of its own), so it is read with ONNX
    Runtime's own parser.
    """
    from onnxruntime.tools.reduced_build_config_parser import parse_config

    required, _ = parse_config(str(config))
    if required is None:  # the config says "no operators named means all of them"
        raise UnsupportedModelError(f"{config.name} asks for every operator: no minimal build to describe")
    return sorted({op for by_opset in required.values() for ops in by_opset.values() for op in ops})
