"""``ferry optimize``: make an ONNX file smaller or faster, and refuse the result if it got worse.

Stages: graph simplification (onnxslim), ONNX Runtime's offline graph optimization at a portable
level, then optionally one precision change: fp16 (ONNX Runtime's converter, I/O kept fp32 when
asked), static int8 (QDQ, per-channel weights, calibrated on real data) or dynamic int8.

Every result is checked against the original before it is written: tensor statistics (on real
photos when the model's preprocessing is known, else on samples), and the task metric where ferry knows the task (for super-resolution:
PSNR on bundled photos against the original model's PSNR). A result that falls below the gate is
refused (:class:`~ferry.errors.VerificationError`, exit 2) and not written unless ``force``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ferry import onnx_file, tasks
from ferry._io import atomic_path
from ferry.compare import DEFAULT_TOLERANCES, OutputStats, Tolerance, compare_outputs
from ferry.errors import MissingDependencyError, UserError, VerificationError
from ferry.onnx_file import read_metadata, stored_specs
from ferry.samples import sample

QUANTIZE_MODES = ("int8", "fp16", "dynamic")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
LEVELS = ("none", "basic", "extended")
# Minimum cosine similarity with the original output when no task metric decides.
DEFAULT_MIN_COSINE = {"fp16": 0.999, "int8": 0.99, "dynamic": 0.99}
# Ops whose weights int8 quantization targets; "last" keeps the last of them (the one that
# writes the output) in float.
_COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


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


def _session(path: Path | str) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # two sessions take turns
    try:
        return ort.InferenceSession(os.fspath(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's exception types are not importable
        raise UserError(f"ONNX Runtime cannot load {path}: {' '.join(str(exc).split())[:400]}") from exc


def _runner(sess: Any) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    names = [o.name for o in sess.get_outputs()]

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, sess.run(None, dict(feeds)), strict=True))

    return run


def _ordered(sess: Any) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]:
    """A task gate's run function: named inputs in, the outputs in graph order out."""
    return lambda feeds: list(sess.run(None, dict(feeds)))


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        import onnxslim
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        raise MissingDependencyError("onnxslim is not installed: pip install onnxslim") from exc
    return onnxslim.slim(proto)


def _ort_optimize(src: Path, dst: Path, level: str) -> None:
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


def _nodes_to_exclude(proto: onnx.ModelProto, keep: Sequence[str]) -> list[str]:
    names = {n.name for n in proto.graph.node}
    out: list[str] = []
    for item in keep:
        if item == "last":
            compute = [n.name for n in proto.graph.node if n.op_type in _COMPUTE_OPS]
            if compute:
                out.append(compute[-1])
        elif item not in names:
            raise UserError(f"--keep-float names node {item!r}, which is not in the graph")
        else:
            out.append(item)
    return out


def _dynamic_spatial(proto: onnx.ModelProto, name: str) -> bool:
    for inp in proto.graph.input:
        if inp.name == name:
            dims = inp.type.tensor_type.shape.dim
            return len(dims) == 4 and not any(d.HasField("dim_value") for d in dims[2:])
    return False


def calibration_data(
    proto: onnx.ModelProto, cfg: OptimizeConfig, *, default_images: Callable[[], list[Any]] | None = None
) -> list[dict[str, np.ndarray]]:
    """Calibration samples: ``.npy``/``.npz`` files or images of ``cfg.calibration``, else the
    default images; random crops of ``cfg.crop`` pixels where the model is spatially dynamic."""
    from ferry import images as imaging
    from ferry import preprocessing
    from ferry.samples import read_arrays

    names = onnx_file.input_names(proto)
    rng = np.random.default_rng(cfg.seed)
    samples: list[dict[str, np.ndarray]] = []
    images: list[Any] = []
    if cfg.calibration is not None:
        folder = Path(cfg.calibration)
        if not folder.is_dir():
            raise UserError(f"--calibration must be a folder of images or .npy/.npz files: {folder}")
        files = sorted(p for p in folder.rglob("*") if p.suffix in (".npy", ".npz"))
        if files:
            samples = [read_arrays([os.fspath(p)], names) for p in files]
        else:
            images = [imaging.load_image(p) for p in imaging.find_images(folder)]
    elif default_images is not None:
        images = [img for _, img in default_images()]
    else:
        raise UserError("int8 static quantization needs --calibration DIR (images or .npy/.npz samples)")
    if images:
        prep = preprocessing.for_task(read_metadata(proto).get("task"))
        if prep is None:
            raise UserError(
                "the model has no stored preprocessing (it was not exported by ferry from a zoo model);"
                " give --calibration a folder of .npy/.npz samples instead of images"
            )
        per_image = max(1, cfg.calibration_samples // max(1, len(images)))
        for img in images:
            arrays = prep(img)
            for _ in range(per_image):
                feed = {}
                for name, arr in zip(names, arrays, strict=True):
                    if _dynamic_spatial(proto, name) and arr.ndim == 4:
                        h, w = arr.shape[2:]
                        ch, cw = min(cfg.crop, h), min(cfg.crop, w)
                        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                        arr = arr[:, :, top : top + ch, left : left + cw]
                    feed[name] = np.ascontiguousarray(arr)
                samples.append(feed)
    if not samples:
        raise UserError(f"no calibration samples found in {cfg.calibration}")
    missing = [n for n in names if n not in samples[0]]
    if missing:
        raise UserError(f"calibration samples lack input(s) {', '.join(missing)}")
    return samples[: cfg.calibration_samples]


def _quantize_static(src: Path, dst: Path, data: list[dict[str, np.ndarray]], cfg: OptimizeConfig) -> list[str]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(data)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    excluded = _nodes_to_exclude(onnx.load(os.fspath(src), load_external_data=False), cfg.keep_float)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[cfg.method]
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
        quantize_static(
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
    return excluded


def _quantize_dynamic(src: Path, dst: Path, cfg: OptimizeConfig) -> list[str]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = _nodes_to_exclude(onnx.load(os.fspath(src), load_external_data=False), cfg.keep_float)
    quantize_dynamic(
        os.fspath(src),
        os.fspath(dst),
        per_channel=cfg.per_channel,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
    )
    return excluded


def _to_fp16(proto: onnx.ModelProto, cfg: OptimizeConfig) -> tuple[onnx.ModelProto, list[str]]:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    excluded = _nodes_to_exclude(proto, [k for k in cfg.keep_float if k != "last"])
    return convert_float_to_float16(proto, keep_io_types=cfg.keep_io_types, node_block_list=excluded or None), excluded


def _latency_ratio(original: Any, optimized: Any, feeds: Mapping[str, np.ndarray], budget: float = 1.0) -> float:
    """Median latency of the original over the optimized model, interleaved on ONNX Runtime."""
    from ferry.bench import interleave

    def timed(sess: Any) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            sess.run(None, dict(feeds))
            return time.perf_counter() - start

        return run

    for sess in (original, optimized):
        sess.run(None, dict(feeds))  # warm-up
    times, _ = interleave({"original": timed(original), "optimized": timed(optimized)}, seconds=budget)
    return float(np.median(times["original"]) / np.median(times["optimized"]))


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
    proto = onnx_file.load(src)
    meta = read_metadata(proto)
    info, task = tasks.of(meta.get("task"))
    steps: list[str] = []
    kept: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferry-optimize-") as tmp:
        work = Path(tmp) / "step0.onnx"
        current = proto
        if cfg.simplify:
            current = _simplify(current)
            steps.append("onnxslim")
        onnx.save(current, os.fspath(work))
        if cfg.level != "none" and cfg.quantize not in ("int8", "dynamic"):
            nxt = Path(tmp) / "step1.onnx"
            _ort_optimize(work, nxt, cfg.level)
            work = nxt
            steps.append(f"onnxruntime-{cfg.level}")
        if cfg.quantize in ("int8", "dynamic"):
            from onnxruntime.quantization import quant_pre_process

            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(os.fspath(work), os.fspath(pre), skip_optimization=cfg.level == "none")
            steps.append("quant-pre-process")
            nxt = Path(tmp) / "quant.onnx"
            if cfg.quantize == "int8":
                bundled = task.calibration_images(info) if task and task.calibration_images else None
                data = calibration_data(proto, cfg, default_images=(lambda: bundled) if bundled else None)
                kept = _quantize_static(pre, nxt, data, cfg)
                steps.append(f"int8-static-qdq ({cfg.method}, {len(data)} samples)")
            else:
                kept = _quantize_dynamic(pre, nxt, cfg)
                steps.append("int8-dynamic")
            work = nxt
        elif cfg.quantize == "fp16":
            converted, kept = _to_fp16(onnx.load(os.fspath(work)), cfg)
            work = Path(tmp) / "fp16.onnx"
            onnx.save(converted, os.fspath(work))
            steps.append("fp16" + (" (fp32 I/O)" if cfg.keep_io_types else ""))
        result_proto = onnx.load(os.fspath(work))
        _carry_metadata(proto, result_proto, steps, cfg, kept)
        final = Path(tmp) / "final.onnx"
        onnx.save(result_proto, os.fspath(final))
        original, optimized = _session(src), _session(final)
        compared_on, stats, feeds = _tensor_stats(proto, original, optimized, cfg)
        gate = None
        if task is not None and task.quality_gate is not None:
            gate = task.quality_gate(proto, _ordered(original), _ordered(optimized), cfg.max_psnr_drop)
        if gate is None:
            gate = _cosine_gate(stats, cfg)
        ratio = _latency_ratio(original, optimized, feeds) if feeds else None
        written = False
        if gate.passed or cfg.force:
            with atomic_path(out) as tmp_out:
                tmp_out.write_bytes(final.read_bytes())
            written = True
        result = OptimizeResult(
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
    return result


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


def _stat_samples(proto: onnx.ModelProto, cfg: OptimizeConfig) -> tuple[str, list[dict[str, np.ndarray]]]:
    """Samples to compare the two models on: real photos through the stored preprocessing when
    there is one (a quantized model is calibrated for real data; random normals fall outside
    its ranges), else ``.npy`` calibration samples, else random samples at the export shapes."""
    from ferry import preprocessing
    from ferry.images import bundled_photos

    prep = preprocessing.for_task(read_metadata(proto).get("task"))
    names = onnx_file.input_names(proto)
    if prep is not None:
        feeds = [dict(zip(names, prep(img), strict=True)) for _, img in bundled_photos()]
        return "bundled photos", feeds
    if cfg.calibration is not None and any(Path(cfg.calibration).rglob("*.np[yz]")):
        return "calibration samples", calibration_data(proto, replace(cfg, calibration_samples=cfg.samples))
    specs = stored_specs(proto)
    if not specs:
        from ferry.onnx_file import graph_specs

        specs = graph_specs(proto)
    return "random samples", [sample(specs, cfg.seed, k, patterned=False) for k in range(cfg.samples if specs else 0)]


def _tensor_stats(
    proto: onnx.ModelProto, original: Any, optimized: Any, cfg: OptimizeConfig
) -> tuple[str, list[OutputStats], dict[str, np.ndarray]]:
    """Worst-case output statistics of the optimized model against the original."""
    kind, samples = _stat_samples(proto, cfg)
    worst: dict[str, OutputStats] = {}
    run_a, run_b = _runner(original), _runner(optimized)
    for feeds in samples:
        ref, got = run_a(feeds), run_b(feeds)
        # The fp32 tolerance marks what moved; the gate, not these flags, decides.
        for s in compare_outputs(ref, got, default=Tolerance(*DEFAULT_TOLERANCES["float32"])):
            if s.name not in worst or s.max_abs_diff > worst[s.name].max_abs_diff:
                worst[s.name] = s
    return kind, list(worst.values()), (samples[0] if samples else {})


def _cosine_gate(stats: Sequence[OutputStats], cfg: OptimizeConfig) -> Gate:
    if not stats:
        raise UserError("no input shapes known to verify the optimized model with; export it with ferry")
    float_stats = [s for s in stats if np.issubdtype(np.dtype(s.dtype), np.floating)]
    if cfg.quantize is None and cfg.min_cosine is None:
        # Graph rewrites alone must keep float32 parity.
        ok = all(s.ok for s in stats)
        worst = max((s.max_abs_diff for s in float_stats), default=0.0)
        return Gate("fp32_parity_max_abs", worst, DEFAULT_TOLERANCES["float32"][1], ok)
    limit = cfg.min_cosine if cfg.min_cosine is not None else DEFAULT_MIN_COSINE[cfg.quantize or "int8"]
    cosine = min((s.cosine_similarity for s in float_stats), default=1.0)
    exact = all(s.ok for s in stats if s not in float_stats)
    return Gate("cosine_similarity", cosine, limit, cosine >= limit and exact)


def refuse(result: OptimizeResult) -> None:
    """Raise the verification error for a refused result (the CLI's exit 2)."""
    where = "written anyway (--force)" if result.written else "not written"
    raise VerificationError(f"the optimized model fails the gate: {result.gate.describe()}; {where}")
