"""Numerical comparison of a runtime's outputs with the reference, with explicit tolerances."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from ferry.errors import UserError

# (rtol, atol) per dtype. An element passes when |test - ref| <= atol + rtol * |ref|.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-7, 1e-9),
    "float32": (1e-4, 1e-5),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
}


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    @classmethod
    def for_dtype(cls, dtype: np.dtype | str) -> Tolerance | None:
        """Default tolerance for a float dtype, ``None`` for exact (integer, bool) comparison."""
        name = np.dtype(dtype).name
        if name in DEFAULT_TOLERANCES:
            return cls(*DEFAULT_TOLERANCES[name])
        return None


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """Parse ``NAME=RTOL,ATOL`` (a per-output ``--tolerance``)."""
    name, sep, values = text.partition("=")
    parts = values.split(",")
    if not sep or not name or len(parts) != 2:
        raise UserError(f"bad --tolerance {text!r}; expected NAME=RTOL,ATOL, e.g. output=1e-4,1e-5")
    try:
        rtol, atol = float(parts[0]), float(parts[1])
    except ValueError as exc:
        raise UserError(f"bad --tolerance {text!r}: RTOL and ATOL must be numbers") from exc
    if rtol < 0 or atol < 0 or not math.isfinite(rtol) or not math.isfinite(atol):
        raise UserError(f"bad --tolerance {text!r}: RTOL and ATOL must be finite and non-negative")
    return name, Tolerance(rtol, atol)


@dataclass(frozen=True)
class OutputStats:
    """How one output of a runtime differs from the reference.

    ``rtol``/``atol`` are ``None`` for exact comparison (integer and bool outputs).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float
    max_rel_diff: float
    mismatch_fraction: float
    cosine_similarity: float
    rtol: float | None
    atol: float | None
    ok: bool
    problem: str = ""
    #: counts of |diff| per decade: [0], (0, 1e-9], (1e-9, 1e-8], ..., (1e-1, 1], > 1
    histogram: tuple[int, ...] = ()
    #: how the verdict was reached: "noise" (against PyTorch in float64, see :func:`judge_noise`),
    #: "tolerance" (element-wise rtol/atol against PyTorch float32) or "exact" (integers, bools)
    rule: str = "tolerance"
    #: ``rule == "noise"``: largest |runtime - PyTorch float64|
    error_vs_float64: float | None = None
    #: ``rule == "noise"``: largest |PyTorch float32 - PyTorch float64|, PyTorch's own rounding
    torch_error: float | None = None
    #: ``rule == "noise"``: the bound ``error_vs_float64`` must stay within
    allowed: float | None = None
    #: class-score outputs: the fraction of rows (all axes but the last) whose argmax agrees
    top1_agreement: float | None = None

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compare_arrays(name: str, reference: np.ndarray, test: np.ndarray, tol: Tolerance | None) -> OutputStats:
    """Compare ``test`` with ``reference`` element-wise.

    Args:
        name: output name for the report.
        reference: the reference values (PyTorch eager).
        test: the runtime's values.
        tol: tolerance; ``None`` compares exactly.
    """
    ref = np.asarray(reference)
    tst = np.asarray(test)
    shape = tuple(int(d) for d in ref.shape)
    if ref.shape != tst.shape:
        return OutputStats(
            name,
            shape,
            ref.dtype.name,
            math.inf,
            math.inf,
            1.0,
            math.nan,
            tol.rtol if tol else None,
            tol.atol if tol else None,
            False,
            f"shape {tuple(tst.shape)} differs from the reference {shape}",
        )
    if ref.size == 0:
        return OutputStats(name, shape, ref.dtype.name, 0.0, 0.0, 0.0, 1.0, None, None, True)
    r = ref.astype(np.float64)
    t = tst.astype(np.float64)
    diff = np.abs(t - r)
    both_nan = np.isnan(r) & np.isnan(t)
    diff = np.where(both_nan, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    with np.errstate(over="ignore", invalid="ignore"):
        rel = diff / np.maximum(np.abs(r), np.finfo(np.float64).tiny)
    rel = np.where(diff == 0, 0.0, rel)
    if tol is None:
        bad = diff != 0
    else:
        bad = diff > tol.atol + tol.rtol * np.abs(r)
    finite = np.isfinite(r) & np.isfinite(t)
    rf, tf = r[finite].ravel(), t[finite].ravel()
    denom = float(np.linalg.norm(rf) * np.linalg.norm(tf))
    if denom > 0:
        cosine = float(np.dot(rf, tf) / denom)
    else:
        cosine = 1.0 if np.array_equal(rf, tf) else 0.0
    mismatch = float(bad.mean())
    problem = ""
    if mismatch:
        idx = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), ref.shape)
        problem = (
            f"{int(bad.sum())} of {bad.size} elements outside tolerance; worst at {tuple(int(i) for i in idx)}:"
            f" reference {r[idx]:.6g}, got {t[idx]:.6g}"
        )
    return OutputStats(
        name=name,
        shape=shape,
        dtype=ref.dtype.name,
        histogram=error_histogram(diff),
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(rel.max()),
        mismatch_fraction=mismatch,
        cosine_similarity=cosine,
        rtol=tol.rtol if tol else None,
        atol=tol.atol if tol else None,
        ok=mismatch == 0.0,
        problem=problem,
        rule="tolerance" if tol else "exact",
    )


HISTOGRAM_LABELS = ("0", "≤1e-9", *(f"≤1e-{k}" for k in range(8, 0, -1)), "≤1", ">1")


def error_histogram(diff: np.ndarray) -> tuple[int, ...]:
    """Counts of absolute differences per decade (see ``HISTOGRAM_LABELS``)."""
    flat = diff.ravel()
    zero = int(np.count_nonzero(flat == 0))
    edges = [0.0, *(10.0**k for k in range(-9, 1)), np.inf]
    counts, _ = np.histogram(flat[flat > 0], bins=edges)
    return (zero, *(int(c) for c in counts))


#: machine epsilon of the arithmetic a runtime reports (``Session.precision``)
EPSILON: dict[str, float] = {"fp64": 2.0**-52, "fp32": 2.0**-23, "fp16": 2.0**-10, "bf16": 2.0**-7}


@dataclass(frozen=True)
class NoiseRule:
    """When is a runtime as close to the exact result as PyTorch's own float32 run?

    PyTorch runs each sample twice, in float32 (the reference users ship) and in float64 (the
    module and its float inputs cast to double: the exact result to float32's eyes). Per output,
    ``torch_error = max|t32 - t64|`` is PyTorch's own rounding error and ``scale = max|t64|``.
    A runtime computing in precision ``p`` passes when

        max|runtime - t64| <= max(factor * torch_error * eps_p / eps_fp32,  ulps * eps_p * scale)

    The first term accepts any runtime whose error is of the order of PyTorch's own (other
    summation orders, fused kernels, approximations as good as PyTorch's); the second is a floor
    for outputs PyTorch computes exactly (a copy, a single rounding), ``ulps`` units in the last
    place of the output's largest value. Both follow the output's scale, so small outputs (random
    init logits of 1e-5) are not waved through by an absolute tolerance, and large ones are not
    failed by it. docs/verify.md gives the measurements behind the defaults.
    """

    factor: float = 10.0
    ulps: float = 8.0

    def allowed(self, torch_error: float, scale: float, precision: str = "fp32") -> float:
        """The bound on ``max|runtime - t64|`` for one output."""
        eps = EPSILON.get(precision, EPSILON["fp32"])
        return max(self.factor * torch_error * eps / EPSILON["fp32"], self.ulps * eps * scale)


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in float64, 0 where both are equal (the same infinity, both NaN), inf where one is NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, diff)
    return np.where(np.isnan(diff), np.inf, diff)


def judge_noise(
    name: str,
    reference: np.ndarray,
    float64: np.ndarray,
    test: np.ndarray,
    *,
    precision: str = "fp32",
    rule: NoiseRule | None = None,
) -> OutputStats:
    """Judge one float output by :class:`NoiseRule` against PyTorch's float64 result.

    The statistics (max abs, max rel, cosine, histogram) stay those against the float32
    reference, what users compare with; the verdict, mismatch fraction and problem come from
    the error against float64.
    """
    rule = rule or NoiseRule()
    stats = compare_arrays(name, reference, test, Tolerance(0.0, 0.0))
    r64 = np.asarray(float64, dtype=np.float64)
    if stats.max_abs_diff == math.inf and np.shape(test) != r64.shape:
        return replace(stats, rule="noise", rtol=None, atol=None)
    t = np.asarray(test).astype(np.float64)
    torch_err = _abs_diff(np.asarray(reference).astype(np.float64), r64)
    err = _abs_diff(t, r64)
    finite = r64[np.isfinite(r64)]
    scale = float(np.abs(finite).max()) if finite.size else 0.0
    torch_error = float(torch_err.max()) if torch_err.size else 0.0
    allowed = rule.allowed(torch_error if math.isfinite(torch_error) else 0.0, scale, precision)
    bad = err > allowed
    worst = float(err.max()) if err.size else 0.0
    problem = ""
    if bad.any():
        idx = np.unravel_index(int(np.argmax(err)), r64.shape)
        problem = (
            f"{int(bad.sum())} of {bad.size} elements further from float64 than {allowed:.3g}"
            f" ({rule.factor:g}x PyTorch float32's own error {torch_error:.3g}, or {rule.ulps:g} ulp of {scale:.3g});"
            f" worst at {tuple(int(i) for i in idx)}: float64 {r64[idx]:.6g}, got {t[idx]:.6g}"
        )
    return replace(
        stats,
        rtol=None,
        atol=None,
        mismatch_fraction=float(bad.mean()) if bad.size else 0.0,
        ok=not bad.any(),
        problem=problem,
        rule="noise",
        error_vs_float64=worst,
        torch_error=torch_error,
        allowed=allowed,
    )


def _missing(name: str, ref: np.ndarray) -> OutputStats:
    return OutputStats(
        name,
        tuple(np.shape(ref)),
        np.asarray(ref).dtype.name,
        math.inf,
        math.inf,
        1.0,
        math.nan,
        None,
        None,
        False,
        "output missing from the runtime's results",
    )


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    default: Tolerance | None = None,
    float64: Mapping[str, np.ndarray] | None = None,
    precision: str = "fp32",
    rule: NoiseRule | None = None,
) -> list[OutputStats]:
    """Compare every reference output with the runtime's output of the same name.

    With ``float64`` (PyTorch's outputs in double), a float output without an explicit entry in
    ``tolerances`` is judged by the :class:`NoiseRule`. Otherwise the tolerance per output is
    ``tolerances[name]``, else ``default``, else the dtype default; integer and bool outputs are
    compared exactly unless ``tolerances`` names them.
    """
    tolerances = tolerances or {}
    stats = []
    for name, ref in reference.items():
        if name not in test:
            stats.append(_missing(name, ref))
            continue
        # An explicit per-output tolerance applies to any dtype (e.g. +-1 on uint8 pixels);
        # otherwise integer outputs are compared exactly.
        tol = tolerances.get(name)
        dtype_default = Tolerance.for_dtype(np.asarray(ref).dtype)
        exact64 = float64 is not None and name in float64 and np.asarray(float64[name]).dtype == np.float64
        if tol is None and dtype_default is not None and exact64:
            assert float64 is not None
            stats.append(judge_noise(name, ref, float64[name], test[name], precision=precision, rule=rule))
            continue
        if tol is None:
            tol = (default or dtype_default) if dtype_default is not None else None
        stats.append(compare_arrays(name, ref, test[name], tol))
    return stats


def top1_agreement(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Fraction of rows (every axis but the last: one row per prediction) whose largest score is
    at the same index in both; ``None`` for outputs without a class axis or of another shape."""
    ref, tst = np.asarray(reference), np.asarray(test)
    if ref.shape != tst.shape or ref.ndim < 1 or ref.shape[-1] < 2 or ref.size == 0:
        return None
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(tst, axis=-1)))
