"""What bench takes and reports: its settings, each row, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferry.bench._noise import BenchWarning, MachineLoad, quartiles, relative_iqr
from ferry.specs import InputSpec


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark.

    Attributes:
        backends: runtimes to time (``["all"]``: PyTorch eager when there is a model, and every
            installed ONNX runtime except the slow reference evaluator).
        inputs: input specs, one per model input for each size to time (a one-input model:
            one spec per size); empty: the model's declared (or stored) export shapes.
        threads: intra-op thread counts to try (0: each runtime's default).
        batches: batch sizes to substitute on axis 0 (empty: as the specs say).
        seconds: time budget per configuration (input shape x threads), shared by the backends.
        warmup: untimed runs per backend before timing.
        min_runs: timed runs per backend at least, even past the budget.
        max_runs: timed runs per backend at most.
        memory: measure each backend's peak resident memory while loading and warming up.
        seed: seed for the random inputs.
    """

    backends: tuple[str, ...] = ("all",)
    inputs: tuple[InputSpec, ...] = ()
    threads: tuple[int, ...] = (0,)
    batches: tuple[int, ...] = ()
    seconds: float = 2.0
    warmup: int = 2
    min_runs: int = 5
    max_runs: int = 1000
    memory: bool = True
    seed: int = 0


@dataclass
class BenchRow:
    """One backend at one input shape and thread count."""

    backend: str
    version: str
    precision: str
    shape: str
    batch: int
    threads: int
    runs: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    load_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    speedup_vs_eager: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.latencies)

    def stat(self, q: float) -> float:
        """Latency percentile ``q`` (0-100) in seconds."""
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    @property
    def median(self) -> float:
        return self.stat(50)

    @property
    def iqr(self) -> float:
        """Interquartile range of the latencies in seconds: the spread of the middle half of the runs."""
        p25, _, p75 = quartiles(self.latencies)
        return p75 - p25

    @property
    def relative_iqr(self) -> float:
        """:attr:`iqr` over the median (0.05: the middle half of the runs lie within 5% of the median)."""
        return relative_iqr(self.latencies)

    @property
    def label(self) -> str:
        """``backend shape`` (and the threads when set): how warnings name the row."""
        return f"{self.backend} {self.shape}" + (f" threads {self.threads}" if self.threads else "")

    @property
    def throughput(self) -> float:
        """Samples (batch items) per second at the median latency."""
        med = self.median
        return self.batch / med if med > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        ms = (
            {
                "min": 1e3 * min(self.latencies),
                "median": 1e3 * self.median,
                "p25": 1e3 * self.stat(25),
                "p75": 1e3 * self.stat(75),
                "iqr": 1e3 * self.iqr,
                "p90": 1e3 * self.stat(90),
                "p99": 1e3 * self.stat(99),
                "mean": 1e3 * float(np.mean(self.latencies)),
            }
            if self.latencies
            else {}
        )
        return {
            "backend": self.backend,
            "version": self.version,
            "precision": self.precision,
            "shape": self.shape,
            "batch": self.batch,
            "threads": self.threads,
            "runs": self.runs,
            "latency_ms": ms,
            "relative_iqr": self.relative_iqr if self.latencies else None,
            "throughput_per_s": self.throughput if self.latencies else None,
            "load_seconds": self.load_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "speedup_vs_eager": self.speedup_vs_eager,
            "error": self.error,
        }


@dataclass
class BenchReport:
    """Every row of a benchmark run, with the machine and versions it ran on, how busy the machine
    was and what that means for the numbers (``warnings``); truthy when every backend ran (a
    warning does not make a run fail)."""

    source: str
    onnx_path: Path
    rows: list[BenchRow]
    machine: dict[str, Any]
    versions: dict[str, str]
    config: dict[str, Any]
    export_seconds: float | None = None
    load: MachineLoad | None = None
    warnings: list[BenchWarning] = field(default_factory=list)

    def __bool__(self) -> bool:
        return all(r.ok for r in self.rows)

    def fastest(self) -> dict[tuple[str, int], BenchRow]:
        """The fastest backend (lowest median) per (shape, threads)."""
        best: dict[tuple[str, int], BenchRow] = {}
        for r in self.rows:
            key = (r.shape, r.threads)
            if r.ok and (key not in best or r.median < best[key].median):
                best[key] = r
        return best

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": bool(self),
            "source": self.source,
            "onnx_path": str(self.onnx_path),
            "export_seconds": self.export_seconds,
            "machine": self.machine,
            "versions": self.versions,
            "config": self.config,
            "rows": [r.to_dict() for r in self.rows],
            "load": None if self.load is None else self.load.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
        }
