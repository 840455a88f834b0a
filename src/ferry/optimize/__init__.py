"""``ferry optimize``: simplify, optimize, convert to fp16 or quantize to int8, and refuse a result
that lost quality.

The passes (``passes/``, one per module) write one file after another; the result is judged
against the original on the same runtime (``gate_backend``, ONNX Runtime by default): the model's
task gate on real data where its task has one (super-resolution: PSNR on photos), else a
tensor gate (cosine similarity, or float32 parity for graph rewrites alone).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ferry import onnx_file, tasks
from ferry._io import atomic_path
from ferry.backends.base import Session
from ferry.errors import UserError, VerificationError
from ferry.optimize._calibration import calibration_data
from ferry.optimize._gate import cosine_gate, latency_ratio, tensor_stats
from ferry.optimize._results import (
    CALIBRATION_METHODS,
    DEFAULT_MIN_COSINE,
    LEVELS,
    QUANTIZE_MODES,
    Gate,
    OptimizeConfig,
    OptimizeResult,
)
from ferry.optimize.passes import PassResult
from ferry.optimize.passes.fp16 import to_fp16
from ferry.optimize.passes.ort_offline import ort_offline
from ferry.optimize.passes.quantize import pre_process, quantize_dynamic, quantize_static
from ferry.optimize.passes.simplify import simplify

__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_MIN_COSINE",
    "LEVELS",
    "QUANTIZE_MODES",
    "Gate",
    "OptimizeConfig",
    "OptimizeResult",
    "calibration_data",
    "optimize",
    "refuse",
]


def optimize(
    source: str | os.PathLike[str], output: str | os.PathLike[str], config: OptimizeConfig | None = None
) -> OptimizeResult:
    """Optimize an ONNX file, verify the result against the original, and write it if it passes.

    Raises:
        UserError: bad arguments or a model the tools cannot handle.
        VerificationError: the result fell below the gate (nothing written unless ``force``).

    Example:
        >>> r = ferry.optimize("sr.onnx", "sr_int8.onnx", ferry.OptimizeConfig(quantize="int8"))
        >>> r.gate.describe()
        'psnr_drop_db 0.05 (<= 0.1 required)'
    """
    cfg = config or OptimizeConfig()
    start = time.perf_counter()
    src, out = Path(source), Path(output)
    _check_arguments(cfg, src, out)
    proto = onnx_file.load(src)
    info, task = tasks.of(onnx_file.stored_task(proto))
    with tempfile.TemporaryDirectory(prefix="ferry-optimize-") as tmp:
        bundled = task.calibration_images(info) if task and task.calibration_images else None
        default = (lambda: bundled) if bundled else None
        done = _transform(proto, cfg, Path(tmp), lambda: calibration_data(proto, cfg, default_images=default))
        steps = [r.step for r in done if r.step]
        kept = next((r.kept_float for r in reversed(done) if r.kept_float), [])
        result_proto = onnx.load(os.fspath(done[-1].path))
        _carry_metadata(proto, result_proto, steps, cfg, kept)
        final = Path(tmp) / "final.onnx"
        onnx.save(result_proto, os.fspath(final))
        original, optimized = _open(src, cfg.gate_backend), _open(final, cfg.gate_backend)
        try:
            compared_on, stats, feeds = tensor_stats(proto, original, optimized, cfg)
            gate = None
            if task is not None and task.quality_gate is not None:
                gate = task.quality_gate(proto, _ordered(original), _ordered(optimized), cfg.max_psnr_drop)
            gate = gate or cosine_gate(stats, cfg)
            ratio = latency_ratio(original, optimized, feeds) if feeds else None
        finally:
            original.close()
            optimized.close()
        written = False
        if gate.passed or cfg.force:
            with atomic_path(out) as tmp_out:
                tmp_out.write_bytes(final.read_bytes())
            written = True
        return OptimizeResult(
            source=src,
            output=out,
            written=written,
            steps=steps,
            size_before=src.stat().st_size,
            size_after=final.stat().st_size,
            ops_before=onnx_file.op_histogram(proto),
            ops_after=onnx_file.op_histogram(result_proto),
            stats=stats,
            gate=gate,
            latency_ratio=ratio,
            seconds=time.perf_counter() - start,
            kept_float=kept,
            compared_on=compared_on,
        )


def _check_arguments(cfg: OptimizeConfig, src: Path, out: Path) -> None:
    if cfg.quantize not in (None, *QUANTIZE_MODES):
        raise UserError(f"unknown --quantize {cfg.quantize!r}; known: {', '.join(QUANTIZE_MODES)}")
    if cfg.method not in CALIBRATION_METHODS:
        raise UserError(f"unknown --method {cfg.method!r}; known: {', '.join(CALIBRATION_METHODS)}")
    if cfg.level not in LEVELS:
        raise UserError(f"unknown --level {cfg.level!r}; known: {', '.join(LEVELS)}")
    if out.suffix != ".onnx":
        raise UserError(f"the output must be an .onnx file, got {out}")
    if out.resolve() == src.resolve():
        raise UserError("the output would overwrite the input; give another -o path")


def _transform(
    proto: onnx.ModelProto, cfg: OptimizeConfig, tmp: Path, calibration: Callable[[], list[dict[str, np.ndarray]]]
) -> list[PassResult]:
    """Run the passes ``cfg`` asks for, in order; the last result holds the final file."""
    work = tmp / "step0.onnx"
    if cfg.simplify:
        done = [simplify(proto, work)]
    else:
        onnx.save(proto, os.fspath(work))
        done = [PassResult(work, "")]
    quantized = cfg.quantize in ("int8", "dynamic")
    if cfg.level != "none" and not quantized:
        done.append(ort_offline(done[-1].path, tmp / "step1.onnx", cfg.level))
    if quantized:
        done.append(pre_process(done[-1].path, tmp / "pre.onnx", optimize=cfg.level != "none"))
        if cfg.quantize == "int8":
            done.append(quantize_static(done[-1].path, tmp / "quant.onnx", calibration(), cfg))
        else:
            done.append(quantize_dynamic(done[-1].path, tmp / "quant.onnx", cfg))
    elif cfg.quantize == "fp16":
        done.append(to_fp16(done[-1].path, tmp / "fp16.onnx", cfg))
    return done


def _open(path: Path, backend: str) -> Session:
    """A session for the gate, fair to time in turns with another (no busy-waiting workers)."""
    from ferry.backends import REGISTRY

    b = REGISTRY.get(backend)
    if b.artifact != "onnx":
        raise UserError(f"the optimize gate runs ONNX files; {backend} does not (try onnxruntime or openvino)")
    b.require()
    return b.load(os.fspath(path), **b.timing_options())


def _ordered(session: Session) -> Callable[[Mapping[str, Any]], list[np.ndarray]]:
    """A task gate's run function: named inputs in, the outputs in graph order out."""
    return lambda feeds: list(session.run(feeds).outputs.values())


def _carry_metadata(
    original: onnx.ModelProto, result: onnx.ModelProto, steps: list[str], cfg: OptimizeConfig, kept: list[str]
) -> None:
    """Keep ferry's export metadata (I/O, task, preprocessing) and record what was done."""
    existing = {p.key for p in result.metadata_props}
    for prop in original.metadata_props:
        if prop.key not in existing:
            result.metadata_props.add(key=prop.key, value=prop.value)
    record = {"steps": steps, "quantize": cfg.quantize, "kept_float": kept}
    for prop in result.metadata_props:
        if prop.key == "ferry.optimized":
            prop.value = json.dumps(record)
            return
    result.metadata_props.add(key="ferry.optimized", value=json.dumps(record))


def refuse(result: OptimizeResult) -> None:
    """Raise the verification error for a refused result (the CLI's exit 2)."""
    where = "written anyway (--force)" if result.written else "not written"
    raise VerificationError(f"the optimized model fails the gate: {result.gate.describe()}; {where}")
