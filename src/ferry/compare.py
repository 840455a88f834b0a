"""Numerical comparison of a runtime's outputs with the reference, with explicit tolerances."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

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
    )


HISTOGRAM_LABELS = ("0", "≤1e-9", *(f"≤1e-{k}" for k in range(8, 0, -1)), "≤1", ">1")


def error_histogram(diff: np.ndarray) -> tuple[int, ...]:
    """Counts of absolute differences per decade (see ``HISTOGRAM_LABELS``)."""
    flat = diff.ravel()
    zero = int(np.count_nonzero(flat == 0))
    edges = [0.0, *(10.0**k for k in range(-9, 1)), np.inf]
    counts, _ = np.histogram(flat[flat > 0], bins=edges)
    return (zero, *(int(c) for c in counts))


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    test: Mapping[str, np.ndarray],
    *,
    tolerances: Mapping[str, Tolerance] | None = None,
    default: Tolerance | None = None,
) -> list[OutputStats]:
    """Compare every reference output with the runtime's output of the same name.

    Tolerance per output: ``tolerances[name]``, else ``default``, else the dtype default.
    """
    tolerances = tolerances or {}
    stats = []
    for name, ref in reference.items():
        if name not in test:
            stats.append(
                OutputStats(
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
            )
            continue
        # An explicit per-output tolerance applies to any dtype (e.g. +-1 on uint8 pixels);
        # otherwise integer outputs are compared exactly.
        tol = tolerances.get(name)
        if tol is None:
            dtype_default = Tolerance.for_dtype(np.asarray(ref).dtype)
            tol = (default or dtype_default) if dtype_default is not None else None
        stats.append(compare_arrays(name, ref, test[name], tol))
    return stats
