"""What verify reports: its settings, each check, each backend's verdict, the whole report."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.compare import NoiseRule, OutputStats, Tolerance
from ferry.tasks import TaskReport


@dataclass(frozen=True)
class VerifyConfig:
    """How to verify.

    Attributes:
        backends: runtimes to compare with PyTorch eager (``["all"]`` for every installed one).
        samples: random samples per input shape.
        seed: seed for the samples.
        judge: ``"noise"`` (default): float outputs are judged against PyTorch in float64 by
            ``noise`` (:class:`~ferry.compare.NoiseRule`); ``"tolerance"``: element-wise
            ``rtol``/``atol`` against PyTorch float32. Giving ``rtol`` or ``atol`` means
            ``"tolerance"``; so does a model that cannot run in float64.
        rtol: relative tolerance for every float output (the model's or the dtype's ``atol`` stays).
        atol: absolute tolerance for every float output (the model's or the dtype's ``rtol`` stays).
        tolerances: per-output tolerances (override everything else, under either rule).
        noise: the noise-aware rule's factor and ulps.
        other_shapes: also verify at shapes other than the export shape when dims are dynamic.
        localize: when a backend fails, find the first diverging ONNX node (and PyTorch module).
    """

    backends: tuple[str, ...] = ("onnxruntime",)
    samples: int = 3
    seed: int = 0
    judge: str = "noise"
    rtol: float | None = None
    atol: float | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    noise: NoiseRule = field(default_factory=NoiseRule)
    other_shapes: bool = True
    localize: bool = True

    @property
    def fixed(self) -> bool:
        """Judged by rtol/atol against float32 (asked for, or implied by --rtol/--atol)."""
        return self.judge == "tolerance" or self.rtol is not None or self.atol is not None


@dataclass
class Check:
    """One backend on one sample at one shape."""

    backend: str
    shape: str
    sample: int
    outputs: list[OutputStats]
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(self.outputs)


@dataclass
class BackendVerdict:
    """All checks of one backend, with its worst numbers per output."""

    name: str
    version: str
    settings: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    #: False for a backend reported for information only (it does not decide ``VerifyReport.ok``).
    gating: bool = True
    #: what was not checked and why (e.g. shapes a static-shape target cannot take)
    notes: list[str] = field(default_factory=list)
    #: why the runtime cannot take the model (a converter's refusal, a reduced build)
    refused: str = ""
    #: why the runtime failed to load the model (a crash of the runtime or its converter)
    error: str = ""

    @property
    def status(self) -> str:
        """``pass``, ``fail`` (outputs differ), ``error`` (the runtime raised) or ``refused``."""
        if self.refused:
            return "refused"
        if self.error or any(c.error for c in self.checks):
            return "error"
        return "pass" if self.checks and all(c.ok for c in self.checks) else "fail"

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def worst(self) -> dict[str, OutputStats]:
        """Per output, the check with the largest normalised error (failures first)."""
        out: dict[str, OutputStats] = {}
        for c in self.checks:
            for s in c.outputs:
                cur = out.get(s.name)
                if cur is None or (cur.ok and not s.ok) or (cur.ok == s.ok and _margin(s) > _margin(cur)):
                    out[s.name] = s
        return out

    def top1(self) -> dict[str, float]:
        """Per class-score output, the lowest top-1 agreement with PyTorch over every check."""
        out: dict[str, float] = {}
        for c in self.checks:
            for s in c.outputs:
                if s.top1_agreement is not None:
                    out[s.name] = min(out.get(s.name, 1.0), s.top1_agreement)
        return out

    @property
    def errors(self) -> list[str]:
        load = [f"load: {self.error}"] if self.error else []
        return load + sorted({f"{c.shape}: {c.error}" for c in self.checks if c.error})

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst()
        finite = [s.max_abs_diff for s in worst.values()]
        rel = [s.max_rel_diff for s in worst.values()]
        times = [c.seconds for c in self.checks if not c.error]
        return {
            "ok": self.ok,
            "status": self.status,
            "refused": self.refused or None,
            "gating": self.gating,
            "version": self.version,
            "settings": self.settings,
            "max_abs_diff": max(finite) if finite else None,
            "max_rel_diff": max(rel) if rel else None,
            "median_seconds": statistics.median(times) if times else None,
            "outputs": {n: s.to_dict() for n, s in worst.items()},
            "top1_agreement": self.top1(),
            "errors": self.errors,
            "checks": len(self.checks),
            "failed_checks": sum(not c.ok for c in self.checks),
            "notes": self.notes,
        }


def _margin(stats: OutputStats) -> float:
    """How close an output came to its bound (noise rule), else its largest difference."""
    if stats.rule == "noise" and stats.allowed and stats.error_vs_float64 is not None:
        return stats.error_vs_float64 / stats.allowed
    return stats.max_abs_diff


@dataclass
class VerifyReport:
    """The result of :func:`verify`; truthy only when every backend passed."""

    source: str
    onnx_path: Path
    shapes: list[dict[str, list[int]]]
    samples: int
    backends: dict[str, BackendVerdict]
    reference: dict[str, Any]
    first_divergence: dict[str, Any] | None = None
    #: super-resolution on real photos per runtime (``photos=`` given and a Y-channel SR model)
    photos: TaskReport | None = None

    @property
    def ok(self) -> bool:
        gating = [b for b in self.backends.values() if b.gating]
        return bool(gating) and all(b.ok for b in gating)

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "model": self.source,
            "onnx": str(self.onnx_path),
            "reference": self.reference,
            "shapes": self.shapes,
            "samples_per_shape": self.samples,
            "backends": {n: b.to_dict() for n, b in self.backends.items()},
            "first_divergence": self.first_divergence,
            "photos": self.photos.to_dict() if self.photos else None,
        }
