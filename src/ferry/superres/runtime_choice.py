"""Pick the fastest *verified* runtime and precision for a super-resolution model on this machine.

Candidates are every installed runtime on the fp32 file and the runtimes' own lower default
precisions (OpenVINO's bf16 on CPUs with AMX or AVX-512 BF16); with ``precision="int8"``, an
int8 copy made by :func:`ferry.optimize.optimize` on every runtime. Each candidate must upscale
the gate photos (chelsea and coffee, which come with scikit-image) within ``max_psnr_drop`` dB
of the fp32 ONNX Runtime result and with 99.9% of pixels within one grey level of it; the
verified ones are timed interleaved on a bounded frame and the fastest wins. The choice is
cached per model file, machine and library versions, so the measurement happens once, and it
is bounded so that the first run of a zoo model stays within seconds, not minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferry._io import write_json_atomic
from ferry.backends import REGISTRY, Session
from ferry.cache import cache_dir, sha256_file, usable_cached_model
from ferry.errors import UserError
from ferry.machine import library_versions, machine
from ferry.superres import imaging
from ferry.superres.pipeline import session_runner

PRECISIONS = ("auto", "fp32", "int8")
#: The most pixels a candidate is timed at (a quarter of an HD frame).
TIMING_PIXELS = 360 * 640
# Runtimes tried on each file (those installed); openvino-default is OpenVINO at its own
# default precision, which differs from f32 only on CPUs with fast bf16.
_CANDIDATE_BACKENDS = ("onnxruntime", "openvino", "openvino-default")


@dataclass
class Candidate:
    """One runtime on one file, with how it did."""

    backend: str
    precision: str
    #: which file: "fp32" (the model given) or "int8" (the quantized copy in the cache)
    file_kind: str
    psnr_drop_db: float | None = None
    #: share of output pixels within 1 grey level of fp32 ONNX Runtime, and the largest difference
    within_one_level: float | None = None
    max_level_diff: int | None = None
    verified: bool = False
    median_ms: float | None = None
    error: str = ""


@dataclass
class RuntimeChoice:
    """The winner and every candidate measured; ``cached`` when read back from the cache."""

    backend: str
    precision: str
    file: Path
    speedup_vs_fp32_onnxruntime: float
    candidates: list[Candidate] = field(default_factory=list)
    key: str = ""
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "file": str(self.file)}

    def describe(self) -> str:
        ratio = self.speedup_vs_fp32_onnxruntime
        return f"{self.backend} ({self.precision})" + (f", {ratio:.1f}x fp32 ONNX Runtime" if ratio == ratio else "")


def _key(model_hash: str, threads: int, precision: str, shape: tuple[int, int]) -> str:
    m = machine()
    parts = {
        "model": model_hash,
        "cpu": m["cpu"],
        "isa": m["isa"],
        "cores": m["usable_cores"],
        "versions": library_versions(),
        "threads": threads,
        "precision": precision,
        "shape": list(shape),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def _load_cache(path: Path) -> dict[str, Any]:
    """The stored choices; an unreadable or damaged file is an empty cache (measured again)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _grey_levels(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.int16)


def choose_runtime(
    onnx_path: str | os.PathLike[str],
    *,
    threads: int = 0,
    precision: str = "auto",
    max_psnr_drop: float = 0.1,
    min_within_one_level: float = 0.999,
    seconds: float = 2.0,
    retune: bool = False,
    shape: tuple[int, int] = (720, 1280),
    on_status: Callable[[str], None] | None = None,
) -> RuntimeChoice:
    """The fastest runtime and precision whose output stays within ``max_psnr_drop`` dB and, on
    ``min_within_one_level`` of the pixels, one grey level of fp32 ONNX Runtime on the bundled
    photos; measured once per model, machine and versions.

    Args:
        onnx_path: a Y-channel super-resolution ONNX file exported by ferry.
        threads: runtime threads (0: each runtime's default).
        precision: ``auto`` (fp32 and the runtimes' own default precisions), ``fp32`` or
            ``int8`` (a gated int8 copy of the model).
        max_psnr_drop: quality gate: PSNR loss (dB) against ground truth on the gate photos.
        min_within_one_level: fidelity gate: share of upscaled pixels (8-bit Y) within one grey
            level of fp32 ONNX Runtime's. The default keeps images indistinguishable from the
            fp32 pipeline; int8 moves a few percent of pixels by 2 or more and is chosen only
            with ``precision="int8"`` or a lower value here.
        seconds: timing budget.
        retune: measure again even if a cached choice exists.
        shape: the input height and width the model will run at (runtimes rank differently on
            small and large inputs): the tile size when tiling, else an HD frame. Larger frames
            are timed at the same aspect ratio and :data:`TIMING_PIXELS` pixels.
        on_status: called with a line saying that a measurement starts.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    path = Path(onnx_path)
    scale = _scale_of(path)
    digest = sha256_file(path)
    if precision == "int8":
        min_within_one_level = 0.0  # asked for int8: the PSNR gate alone applies
    key = _key(digest, threads, precision, shape) + f"-{max_psnr_drop}-{min_within_one_level}"
    cache_file = cache_dir() / "runtime-choice.json"
    cache = _load_cache(cache_file)
    if not retune and (known := _cached(cache, key, path, _int8_path(digest))) is not None:
        return known
    if on_status is not None:
        on_status(f"measuring the fastest verified runtime for this machine once (cached in {cache_dir()})")
    # int8 only when asked (then only int8): it moves a few percent of pixels by two grey levels
    # or more, so it never passes the default fidelity gate, and making the copy costs more than the rest.
    files = {"int8": int8_copy(path, max_psnr_drop=max_psnr_drop)} if precision == "int8" else {"fp32": path}
    candidates, sessions = _open_candidates(files, precision, threads)
    verified = _verify(candidates, sessions, path, scale, max_psnr_drop, min_within_one_level)
    _time(candidates, verified, shape, seconds)
    choice = _pick(candidates, files, key)
    cache[key] = {
        "backend": choice.backend,
        "precision": choice.precision,
        "speedup": choice.speedup_vs_fp32_onnxruntime,
        "candidates": [asdict(c) for c in candidates],
    }
    write_json_atomic(cache_file, cache)
    return choice


def _scale_of(path: Path) -> int:
    """The upscale factor of a Y-channel super-resolution file exported by ferry."""
    from ferry import onnx_file
    from ferry.tasks import TaskInfo

    info = TaskInfo.from_dict(onnx_file.stored_task(onnx_file.load(path, load_external_data=False)))
    if info.kind != "super-resolution" or info.preprocess != "y" or info.scale is None:
        raise UserError(f"{path} is not a Y-channel super-resolution model exported by ferry")
    return info.scale


def _stored_candidates(entry: Any) -> list[Candidate] | None:
    """The candidates of a cache entry as ferry wrote them, or ``None`` for a damaged entry."""
    if not isinstance(entry, dict) or not isinstance(entry.get("candidates"), list):
        return None
    if not isinstance(entry.get("backend"), str) or not isinstance(entry.get("precision"), str):
        return None
    if not isinstance(entry.get("speedup"), float):  # ferry writes a float (an int may not fit one)
        return None
    try:
        stored = [Candidate(**c) for c in entry["candidates"]]
    except TypeError:  # not a mapping, or keys that are not a candidate's
        return None
    return stored if all(_sound(c) for c in stored) else None


def _sound(c: Candidate) -> bool:
    """Whether a candidate read back from the cache holds the types ferry writes."""
    numbers = (c.psnr_drop_db, c.within_one_level, c.max_level_diff, c.median_ms)
    return (
        all(isinstance(v, str) for v in (c.backend, c.precision, c.error))
        and c.file_kind in ("fp32", "int8")
        and isinstance(c.verified, bool)
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in numbers)
    )


def _cached(cache: dict[str, Any], key: str, path: Path, int8: Path) -> RuntimeChoice | None:
    """The choice stored under ``key``, when the entry is sound and the file it names is still
    there (a damaged entry is a miss: measured again and written over)."""
    entry = cache.get(key)
    stored = _stored_candidates(entry)
    if entry is None or stored is None:
        return None
    best = next((c for c in stored if (c.backend, c.precision) == (entry["backend"], entry["precision"])), None)
    if best is None or best.backend not in _CANDIDATE_BACKENDS:
        return None
    file = int8 if best.file_kind == "int8" else path
    if file == int8 and not usable_cached_model(file):
        return None
    if not file.is_file():
        return None
    return RuntimeChoice(entry["backend"], entry["precision"], file, float(entry["speedup"]), stored, key, cached=True)


def _open_candidates(
    files: dict[str, Path], precision: str, threads: int
) -> tuple[list[Candidate], dict[int, Session]]:
    """Every installed candidate runtime on every file (fp32, int8); failures become candidates
    with their error."""
    candidates: list[Candidate] = []
    sessions: dict[int, Session] = {}
    for kind, file in files.items():
        for name in _CANDIDATE_BACKENDS:
            backend = REGISTRY.get(name)
            if not backend.available():
                continue
            try:
                options = backend.timing_options() | ({"threads": threads} if threads else {})
                session = backend.load(os.fspath(file), **options)
            except UserError as exc:
                candidates.append(Candidate(name, kind, kind, error=str(exc)))
                continue
            label = (
                session.precision
                if kind == "fp32"
                else "int8" + ("" if session.precision == "fp32" else f"+{session.precision}")
            )
            if name == "openvino-default" and label == "fp32":
                continue  # same arithmetic as the openvino candidate
            if precision == "fp32" and label != "fp32":
                continue  # asked for fp32 arithmetic: no runtime's lower default
            candidates.append(Candidate(name, label, kind))
            sessions[len(candidates) - 1] = session
    if not sessions:
        raise UserError("no runtime could load the model")
    return candidates, sessions


def _verify(
    candidates: list[Candidate],
    sessions: dict[int, Session],
    path: Path,
    scale: int,
    max_psnr_drop: float,
    min_within_one_level: float,
) -> dict[int, Session]:
    """Score every candidate against fp32 ONNX Runtime on the gate photos; the ones that pass."""
    from ferry.images import gate_photos
    from ferry.superres.scoring import evaluate

    images = gate_photos()
    reference = session_runner(REGISTRY.get("onnxruntime").load(os.fspath(path)))
    baseline = evaluate(reference, images, scale=scale).mean_model
    planes = [imaging.y_to_array(img.convert("RGB").convert("YCbCr").getchannel("Y")) for _, img in images]
    expected = [_grey_levels(reference(p)) for p in planes]
    for idx, session in sessions.items():
        run = session_runner(session)
        cand = candidates[idx]
        cand.psnr_drop_db = baseline - evaluate(run, images, scale=scale).mean_model
        diffs = np.concatenate(
            [np.abs(_grey_levels(run(p)) - e).ravel() for p, e in zip(planes, expected, strict=True)]
        )
        cand.within_one_level = float((diffs <= 1).mean())
        cand.max_level_diff = int(diffs.max())
        cand.verified = cand.psnr_drop_db <= max_psnr_drop and cand.within_one_level >= min_within_one_level
    verified = {idx: s for idx, s in sessions.items() if candidates[idx].verified}
    if not verified:
        raise UserError("no runtime reproduced the fp32 result within the quality gate; use --backend")
    return verified


def _time(candidates: list[Candidate], verified: dict[int, Session], shape: tuple[int, int], seconds: float) -> None:
    """Median latency of every verified candidate at ``shape``, interleaved."""
    from ferry.bench import interleave

    y = np.random.default_rng(0).random((1, 1, *timing_shape(shape)), dtype=np.float32)
    runs = {}
    for idx, session in verified.items():
        feeds = {session.inputs[0].name: y}
        session.run(feeds)  # warm-up

        def timed(s: Session = session, f: dict[str, np.ndarray] = feeds) -> float:
            return s.run(f).seconds

        runs[str(idx)] = timed
    times, _ = interleave(runs, seconds=seconds, min_runs=3)
    for idx_text, t in times.items():
        candidates[int(idx_text)].median_ms = 1e3 * float(np.median(t))


def timing_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """``shape``, or the same aspect ratio at :data:`TIMING_PIXELS` when it is larger: the
    ranking of runtimes on a convolutional network holds from a quarter of an HD frame up,
    and timing a whole HD frame made a zoo model's first run take a minute."""
    height, width = shape
    if height * width <= TIMING_PIXELS:
        return shape
    factor = (TIMING_PIXELS / (height * width)) ** 0.5
    return max(1, round(height * factor)), max(1, round(width * factor))


def _pick(candidates: list[Candidate], files: dict[str, Path], key: str) -> RuntimeChoice:
    """The fastest; within 5% of it, timing noise decides nothing: the most faithful one."""
    timed_ok = [c for c in candidates if c.median_ms is not None]
    fastest = min(c.median_ms or float("inf") for c in timed_ok)
    close = [c for c in timed_ok if (c.median_ms or float("inf")) <= 1.05 * fastest]
    best = min(close, key=lambda c: (c.psnr_drop_db or 0.0, c.median_ms or 0.0))
    fp32_ort = next((c for c in timed_ok if c.backend == "onnxruntime" and c.file_kind == "fp32"), None)
    speedup = (fp32_ort.median_ms or 0) / (best.median_ms or 1) if fp32_ort else float("nan")
    return RuntimeChoice(best.backend, best.precision, files[best.file_kind], speedup, candidates, key)


def int8_copy(onnx_path: str | os.PathLike[str], *, max_psnr_drop: float = 0.1) -> Path:
    """A cached int8 copy of a model made by :func:`ferry.optimize.optimize` (calibrated and
    gated as ``ferry optimize --quantize int8`` does).

    Raises:
        UserError: when int8 loses more than ``max_psnr_drop`` dB.
    """
    from ferry.optimize import OptimizeConfig, optimize

    path = Path(onnx_path)
    target = _int8_path(sha256_file(path))
    if not usable_cached_model(target):
        result = optimize(path, target, OptimizeConfig(quantize="int8", max_psnr_drop=max_psnr_drop))
        if not result:
            raise UserError(f"int8 fails the gate on the bundled photos: {result.gate.describe()}; use fp32")
    return target


def _int8_path(digest: str) -> Path:
    return cache_dir() / "models" / f"{digest[:16]}-int8.onnx"
