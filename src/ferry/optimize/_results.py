"""What optimize takes and reports: its settings, the gate's verdict, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.compare import OutputStats

QUANTIZE_MODES = ("int8", "fp16", "dynamic")


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


LEVELS = ("none", "basic", "extended")


DEFAULT_MIN_COSINE = {"fp16": 0.999, "int8": 0.99, "dynamic": 0.99}


@dataclass(frozen=True)
class OptimizeConfig:
    """What to do to the model, and how good the result must stay.

    Attributes:
        quantize: ``None`` (graph optimizations only), ``"fp16"``, ``"int8"`` (static, QDQ) or
            ``"dynamic"`` (int8 weights, activations quantized at run time).
        calibration: folder of images (fed through the model's stored preprocessing) or of
            ``.npy``/``.npz`` samples, for ``int8``. Default for super-resolution models: the
            bundled training photos (never the validation photos the gate uses).
        method: calibration method: ``minmax``, ``entropy`` or ``percentile``.
        per_channel: per-output-channel weight scales (int8).
        keep_float: nodes left in float: node names, and/or ``"last"`` for the last compute
            op (Conv/MatMul/Gemm), which writes the output and whose rounding shows most.
        keep_io_types: fp16 only: keep fp32 inputs and outputs (casts inside the graph).
        simplify: run onnxslim first.
        level: ONNX Runtime offline optimization: ``none``, ``basic`` or ``extended`` (``all``
            would add layouts specific to this CPU, so it is not offered for a file to ship).
        max_psnr_drop: super-resolution gate: largest PSNR loss (dB) against ground truth.
        min_cosine: tensor gate when no task metric applies (default per mode).
        force: write the file even when the gate refuses it.
        gate_backend: the runtime that runs the original and the optimized model for the gate and
            the speed ratio (any backend that takes an ONNX file).
        samples: random samples for the tensor statistics.
        calibration_samples: at most this many calibration samples.
        crop: side of the random crops taken from calibration images for spatially dynamic inputs.
        seed: seed for samples and crops.
    """

    quantize: str | None = None
    calibration: Path | None = None
    method: str = "percentile"
    per_channel: bool = True
    keep_float: tuple[str, ...] = ("last",)
    keep_io_types: bool = True
    simplify: bool = True
    level: str = "extended"
    max_psnr_drop: float = 0.1
    min_cosine: float | None = None
    force: bool = False
    gate_backend: str = "onnxruntime"
    samples: int = 3
    calibration_samples: int = 64
    crop: int = 128
    seed: int = 0


@dataclass
class Gate:
    """The verdict on the optimized model."""

    metric: str
    value: float
    limit: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        op = "<=" if self.metric in ("psnr_drop_db", "fp32_parity_max_abs") else ">="
        return f"{self.metric} {self.value:.4g} ({op} {self.limit:g} required)"


@dataclass
class OptimizeResult:
    """What an optimization produced; truthy when it passed its gate (and was written)."""

    source: Path
    output: Path
    written: bool
    steps: list[str]
    size_before: int
    size_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    stats: list[OutputStats]
    gate: Gate
    latency_ratio: float | None
    seconds: float
    kept_float: list[str] = field(default_factory=list)
    compared_on: str = ""

    def __bool__(self) -> bool:
        return self.gate.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": bool(self),
            "source": str(self.source),
            "output": str(self.output),
            "written": self.written,
            "steps": self.steps,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "ops_before": self.ops_before,
            "ops_after": self.ops_after,
            "kept_float": self.kept_float,
            "compared_on": self.compared_on,
            "outputs": [s.to_dict() for s in self.stats],
            "gate": {
                "metric": self.gate.metric,
                "value": self.gate.value,
                "limit": self.gate.limit,
                "passed": self.gate.passed,
                **self.gate.details,
            },
            "speedup_onnxruntime": self.latency_ratio,
            "seconds": self.seconds,
        }
