"""int8 quantization with ONNX Runtime's tools: the pre-processing, static (calibrated) and dynamic."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ferry.optimize.passes import PassResult, nodes_to_exclude, running

if TYPE_CHECKING:
    from ferry.optimize._results import OptimizeConfig


def pre_process(src: Path, dst: Path, *, optimize: bool) -> PassResult:
    """Shape inference and (optionally) graph optimization before quantization."""
    from onnxruntime.quantization import quant_pre_process

    with running("ONNX Runtime's quantization pre-processing", "try --level none, or --quantize dynamic"):
        quant_pre_process(os.fspath(src), os.fspath(dst), skip_optimization=not optimize)
    return PassResult(dst, "quant-pre-process")


def quantize_static(src: Path, dst: Path, data: list[dict[str, np.ndarray]], cfg: OptimizeConfig) -> PassResult:
    """int8 static quantization (QDQ, u8 activations x s8 weights) calibrated on ``data``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(data)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    excluded = nodes_to_exclude(onnx.load(os.fspath(src), load_external_data=False), cfg.keep_float)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[cfg.method]
    with (
        running("ONNX Runtime's int8 quantizer", "try --quantize dynamic, or --keep-float on the failing nodes"),
        contextlib.redirect_stdout(io.StringIO()),  # the calibrator prints its progress
    ):
        ort_quantize_static(
            os.fspath(src),
            os.fspath(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=cfg.per_channel,
            activation_type=QuantType.QUInt8,  # u8 activations x s8 weights: the VNNI/AMX fast path
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            nodes_to_exclude=excluded,
        )
    return PassResult(dst, f"int8-static-qdq ({cfg.method}, {len(data)} samples)", excluded)


def quantize_dynamic(src: Path, dst: Path, cfg: OptimizeConfig) -> PassResult:
    """int8 weights, activations quantized at run time."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    excluded = nodes_to_exclude(onnx.load(os.fspath(src), load_external_data=False), cfg.keep_float)
    with running("ONNX Runtime's dynamic quantizer", "try --keep-float on the failing nodes, or --quantize fp16"):
        ort_quantize_dynamic(
            os.fspath(src),
            os.fspath(dst),
            per_channel=cfg.per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
        )
    return PassResult(dst, "int8-dynamic", excluded)
