"""What verify reports: its settings, each check, each backend's verdict, the whole report."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.compare import OutputStats, Tolerance
from ferry.tasks import TaskReport


@dataclass(frozen=True)
class VerifyConfig:
    """How to verify.

    Attributes:
        backends: runtimes to compare with PyTorch eager (``["all"]`` for every installed one).
        samples: random samples per input shape.
        seed: seed for the samples.
        rtol: global relative tolerance (overrides the model's and the dtype default).
        atol: global absolute tolerance.
        tolerances: per-output tolerances (override everything else).
        other_shapes: also verify at shapes other than the export shape when dims are dynamic.
        localize: when a backend fails, find the first diverging ONNX node (and PyTorch module).
    """

    backends: tuple[str, ...] = ("onnxruntime",)
    samples: int = 3
    seed: int = 0
    rtol: float | None = None
    atol: float | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    other_shapes: bool = True
    localize: bool = True


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

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def worst(self) -> dict[str, OutputStats]:
        """Per output, the check with the largest normalised error (failures first)."""
        out: dict[str, OutputStats] = {}
        for c in self.checks:
            for s in c.outputs:
                cur = out.get(s.name)
                if cur is None or (cur.ok and not s.ok) or (cur.ok == s.ok and s.max_abs_diff > cur.max_abs_diff):
                    out[s.name] = s
        return out

    @property
    def errors(self) -> list[str]:
        return sorted({f"{c.shape}: {c.error}" for c in self.checks if c.error})

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst()
        finite = [s.max_abs_diff for s in worst.values()]
        rel = [s.max_rel_diff for s in worst.values()]
        times = [c.seconds for c in self.checks if not c.error]
        return {
            "ok": self.ok,
            "gating": self.gating,
            "version": self.version,
            "settings": self.settings,
            "max_abs_diff": max(finite) if finite else None,
            "max_rel_diff": max(rel) if rel else None,
            "median_seconds": statistics.median(times) if times else None,
            "outputs": {n: s.to_dict() for n, s in worst.items()},
            "errors": self.errors,
            "checks": len(self.checks),
            "failed_checks": sum(not c.ok for c in self.checks),
            "notes": self.notes,
        }


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
