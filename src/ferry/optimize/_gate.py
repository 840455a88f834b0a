"""Judging the optimized model against the original on the same runtime: tensor statistics,
the generic gate, and the speed ratio."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from ferry import onnx_file
from ferry.backends.base import Session
from ferry.compare import DEFAULT_TOLERANCES, OutputStats, Tolerance, compare_outputs
from ferry.errors import UserError
from ferry.onnx_file import read_metadata, stored_specs
from ferry.optimize._calibration import calibration_data
from ferry.optimize._results import DEFAULT_MIN_COSINE, Gate, OptimizeConfig
from ferry.samples import sample


def stat_samples(proto: onnx.ModelProto, cfg: OptimizeConfig) -> tuple[str, list[dict[str, np.ndarray]]]:
    """Samples to compare the two models on: real photos through the stored preprocessing when
    there is one (a quantized model is calibrated for real data; random normals fall outside
    its ranges), else ``.npy`` calibration samples, else random samples at the export shapes."""
    from ferry import preprocessing
    from ferry.images import gate_photos

    prep = preprocessing.for_task(read_metadata(proto).get("task"))
    names = onnx_file.input_names(proto)
    if prep is not None:
        feeds = [dict(zip(names, prep(img), strict=True)) for _, img in gate_photos()]
        return "bundled photos", feeds
    if cfg.calibration is not None and any(Path(cfg.calibration).rglob("*.np[yz]")):
        return "calibration samples", calibration_data(proto, replace(cfg, calibration_samples=cfg.samples))
    specs = stored_specs(proto)
    if not specs:
        from ferry.onnx_file import graph_specs

        specs = graph_specs(proto)
    return "random samples", [sample(specs, cfg.seed, k, patterned=False) for k in range(cfg.samples if specs else 0)]


def tensor_stats(
    proto: onnx.ModelProto, original: Session, optimized: Session, cfg: OptimizeConfig
) -> tuple[str, list[OutputStats], dict[str, np.ndarray]]:
    """Worst-case output statistics of the optimized model against the original."""
    kind, samples = stat_samples(proto, cfg)
    worst: dict[str, OutputStats] = {}
    for feeds in samples:
        ref, got = original.run(feeds).outputs, optimized.run(feeds).outputs
        # The fp32 tolerance marks what moved; the gate, not these flags, decides.
        for s in compare_outputs(ref, got, default=Tolerance(*DEFAULT_TOLERANCES["float32"])):
            if s.name not in worst or s.max_abs_diff > worst[s.name].max_abs_diff:
                worst[s.name] = s
    return kind, list(worst.values()), (samples[0] if samples else {})


def cosine_gate(stats: Sequence[OutputStats], cfg: OptimizeConfig) -> Gate:
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


def latency_ratio(original: Session, optimized: Session, feeds: Mapping[str, np.ndarray], budget: float = 1.0) -> float:
    """Median latency of the original over the optimized model, interleaved on the gate's runtime."""
    from ferry.bench import interleave

    for session in (original, optimized):
        session.run(feeds)  # warm-up
    times, _ = interleave(
        {"original": lambda: original.run(feeds).seconds, "optimized": lambda: optimized.run(feeds).seconds},
        seconds=budget,
    )
    return float(np.median(times["original"]) / np.median(times["optimized"]))
