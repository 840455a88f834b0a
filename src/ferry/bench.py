"""``ferry bench``: latency, throughput, load time and peak memory of one model on every runtime.

Runs are interleaved: each round runs every backend once, in an order that rotates from round to
round, so that a burst of machine noise (another process, frequency scaling) hits all backends
alike instead of whichever happened to run then. Ratios against PyTorch eager are taken from the
same run, never from stored numbers.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ferry import subject
from ferry.backends import REGISTRY, Backend, Session
from ferry.errors import UserError
from ferry.machine import PeakMemory, library_versions, machine
from ferry.models import LoadedModel, forward_arg_names
from ferry.samples import random_inputs
from ferry.specs import Dim, InputSpec
from ferry.subject import Subject


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
    def throughput(self) -> float:
        """Samples (batch items) per second at the median latency."""
        med = self.median
        return self.batch / med if med > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        ms = (
            {
                "min": 1e3 * min(self.latencies),
                "median": 1e3 * self.median,
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
            "throughput_per_s": self.throughput if self.latencies else None,
            "load_seconds": self.load_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "speedup_vs_eager": self.speedup_vs_eager,
            "error": self.error,
        }


@dataclass
class BenchReport:
    """Every row of a benchmark run, with the machine and versions it ran on; truthy when every
    backend ran."""

    source: str
    onnx_path: Path
    rows: list[BenchRow]
    machine: dict[str, Any]
    versions: dict[str, str]
    config: dict[str, Any]
    export_seconds: float | None = None

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
        }


def _label(specs: Sequence[InputSpec]) -> str:
    if len(specs) == 1:
        return "x".join(map(str, specs[0].shape))
    return " ".join(f"{s.name}={'x'.join(map(str, s.shape))}" for s in specs)


def _static_batch(proto: onnx.ModelProto) -> dict[str, int]:
    """Inputs whose axis 0 the graph fixes to a size."""
    fixed = {}
    for inp in proto.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            fixed[inp.name] = dims[0].dim_value
    return fixed


def _with_batch(specs: Sequence[InputSpec], batch: int, fixed: Mapping[str, int]) -> tuple[InputSpec, ...]:
    out = []
    for s in specs:
        if not s.dims:
            out.append(s)
            continue
        if s.name in fixed and fixed[s.name] != batch:
            raise UserError(
                f"axis 0 of input {s.name!r} is static ({fixed[s.name]}) in the ONNX file; cannot benchmark batch"
                f" {batch} (export with a dynamic batch, e.g. --input batch=1,...)"
            )
        out.append(replace(s, dims=(Dim(batch, s.dims[0].name or "batch"), *s.dims[1:])))
    return tuple(out)


def _groups(inputs: Sequence[InputSpec], names: Sequence[str]) -> list[tuple[InputSpec, ...]]:
    """Split a flat list of specs into one configuration per size, named after the inputs."""
    n = len(names)
    if n == 0 or len(inputs) % n:
        raise UserError(
            f"the model has {n} input(s) ({', '.join(names)}) but {len(inputs)} --input specs were given;"
            f" give {n} per size, in input order"
        )
    return [
        tuple(s.with_name(name) for s, name in zip(inputs[i : i + n], names, strict=True))
        for i in range(0, len(inputs), n)
    ]


def _configurations(
    cfg: BenchConfig, declared: Sequence[InputSpec], onnx_names: Sequence[str], fixed: Mapping[str, int]
) -> list[tuple[InputSpec, ...]]:
    base = _groups(cfg.inputs, onnx_names) if cfg.inputs else [tuple(declared)]
    configs = []
    for specs in base:
        named = tuple(s.with_name(n) for s, n in zip(specs, onnx_names, strict=True))
        for batch in cfg.batches or [None]:
            configs.append(named if batch is None else _with_batch(named, batch, fixed))
    return configs


def export_specs(groups: Sequence[Sequence[InputSpec]], *, dynamic_batch: bool) -> tuple[InputSpec, ...]:
    """Specs to export a model with so that every benchmarked size fits: the first size, with
    each axis that differs between sizes (and axis 0 when batches vary) made dynamic."""
    first = groups[0]
    out = []
    for k, spec in enumerate(first):
        dims = []
        for axis, d in enumerate(spec.dims):
            varies = any(len(g[k].dims) != len(spec.dims) or g[k].dims[axis].size != d.size for g in groups)
            if d.name is None and (varies or (axis == 0 and dynamic_batch)):
                d = Dim(d.size, "batch" if axis == 0 else f"{spec.name}_dim{axis}")
            dims.append(d)
        out.append(replace(spec, dims=tuple(dims)))
    return tuple(out)


def _module_bytes(loaded: LoadedModel) -> int:
    return sum(t.numel() * t.element_size() for t in (*loaded.module.parameters(), *loaded.module.buffers()))


def resolve_subject(
    model_or_file: str | os.PathLike[str] | LoadedModel,
    work_dir: Path,
    *,
    model: str | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] = (),
    dynamic_batch: bool = False,
) -> Subject:
    """The PyTorch model (when known), an ONNX file of it and the export time.

    An ``.onnx`` path is used as is (``model`` adds its PyTorch source for the eager baseline);
    anything else is loaded as a model source and exported into ``work_dir``, with its declared
    inputs, or else with ``inputs`` (specs for one or more sizes, see :func:`export_specs`).
    """
    if subject.is_onnx_file(model_or_file):
        return subject.resolve(model_or_file, model=model, args=args, weights=weights)
    loaded = subject.load(model_or_file, args=args, weights=weights)
    specs = None
    if not loaded.inputs:
        if not inputs:
            raise UserError(f"{loaded.source} declares no inputs; give --input specs, one per forward() argument")
        specs = export_specs(_groups(inputs, forward_arg_names(loaded.module)), dynamic_batch=dynamic_batch)
    return subject.resolve(loaded, work_dir=work_dir, export_inputs=specs)


def default_backends(has_model: bool) -> list[str]:
    """What ``--backends all`` times: eager when there is a model, every installed ONNX runtime
    except the reference evaluator (a correctness oracle, orders of magnitude slower), and the
    runtimes that lower the PyTorch module themselves (ExecuTorch) when there is a model."""
    names = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "onnx" and n != "reference"]
    lowered = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "module"]
    return (["torch"] if has_model else []) + names + (lowered if has_model else [])


def bench(
    model_or_file: str | os.PathLike[str] | LoadedModel,
    *,
    model: str | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: BenchConfig | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Time a model on every runtime, interleaved, and compare each with PyTorch eager.

    Args:
        model_or_file: a model source (``zoo:NAME``, ``file.py:Attr``...) that is exported to a
            temporary ONNX file, or an ``.onnx`` file.
        model: for an ``.onnx`` file, the PyTorch source to time as the eager baseline.
        args: constructor keyword arguments.
        weights: a state dict to load.
        config: backends, shapes, threads, batch sizes and the time budget.
        on_progress: called with a short description of each configuration as it starts.

    Example:
        >>> report = ferry.bench("zoo:superres", config=ferry.BenchConfig(seconds=1))
        >>> {r.backend: round(r.speedup_vs_eager, 1) for r in report.rows}
        {'torch': 1.0, 'onnxruntime': 2.6, ...}
    """
    cfg = config or BenchConfig()
    if cfg.seconds <= 0 or cfg.min_runs < 1 or cfg.max_runs < cfg.min_runs or cfg.warmup < 0:
        raise UserError("--seconds must be positive, --min-runs at least 1 and at most --max-runs")
    if any(t < 0 for t in cfg.threads) or any(b < 1 for b in cfg.batches):
        raise UserError("--threads must be 0 (default) or more and --batch at least 1")
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        subj = resolve_subject(
            model_or_file,
            Path(tmp),
            model=model,
            args=args,
            weights=weights,
            inputs=cfg.inputs,
            dynamic_batch=bool(cfg.batches),
        )
        loaded, path, export_seconds = subj.loaded, subj.onnx_path, subj.export_seconds
        names = default_backends(loaded is not None) if list(cfg.backends) == ["all"] else list(cfg.backends)
        chosen = REGISTRY.resolve(names)
        needs_module = [b.name for b in chosen if b.artifact in ("torch", "module")]
        if needs_module and loaded is None:
            raise UserError(
                f"{', '.join(needs_module)} needs the PyTorch model: give --model SOURCE with an .onnx file"
            )
        if not subj.specs and not cfg.inputs:
            raise UserError(f"no input shapes known for {path}; give --input specs")
        onnx_names = [i.name for i in subj.graph_inputs]
        configs = _configurations(cfg, subj.specs, onnx_names, _static_batch(subj.proto))
        rows: list[BenchRow] = []
        for specs in configs:
            for threads in cfg.threads:
                label = _label(specs)
                if on_progress is not None:
                    on_progress(f"{label}, threads {threads or 'default'}")
                rows += _bench_one(cfg, chosen, subj, specs, threads)
        for r in rows:
            eager = next(
                (e for e in rows if e.backend == "torch" and (e.shape, e.threads) == (r.shape, r.threads)), None
            )
            if eager is not None and eager.ok and r.ok:
                r.speedup_vs_eager = eager.median / r.median
        source = loaded.source if loaded is not None else str(path)
        return BenchReport(
            source=source,
            onnx_path=path if export_seconds is None else Path("(exported)"),
            rows=rows,
            machine=machine(),
            versions=library_versions() | {b.name: b.version() or "" for b in chosen},
            config={
                "backends": [b.name for b in chosen],
                "inputs": [_label(c) for c in configs],
                "threads": list(cfg.threads),
                "seconds": cfg.seconds,
                "warmup": cfg.warmup,
                "min_runs": cfg.min_runs,
                "max_runs": cfg.max_runs,
                "interleaved": True,
            },
            export_seconds=export_seconds,
        )


def interleave(
    runs: Mapping[str, Callable[[], float]], *, seconds: float, min_runs: int = 5, max_runs: int = 1000
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Call each function once per round, in an order rotating from round to round, until
    ``seconds`` have passed and every one ran ``min_runs`` times (or ``max_runs``).

    Each function runs the model once and returns its own timing in seconds. A function that
    raises :class:`UserError` leaves the rotation; its message is returned.
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    errors: dict[str, str] = {}
    order = list(runs)
    start = time.perf_counter()
    rounds = 0
    while order and rounds < max_runs:
        if rounds >= min_runs and time.perf_counter() - start >= seconds:
            break
        shift = rounds % len(order)
        for name in order[shift:] + order[:shift]:
            try:
                times[name].append(runs[name]())
            except UserError as exc:
                errors[name] = str(exc)
        order = [n for n in order if n not in errors]
        rounds += 1
    return times, errors


def _bench_one(
    cfg: BenchConfig, backends: Sequence[Backend], subj: Subject, specs: Sequence[InputSpec], threads: int
) -> list[BenchRow]:
    """Load every backend, warm it up, then time interleaved rounds until the budget is spent."""
    loaded = subj.loaded
    feeds = random_inputs(specs, cfg.seed)
    batch = specs[0].shape[0] if specs and specs[0].shape else 1
    label = _label(specs)
    rows: dict[str, BenchRow] = {}
    sessions: dict[str, Session] = {}
    for b in backends:
        row = BenchRow(b.name, b.version() or "", "fp32", label, batch, threads)
        rows[b.name] = row
        memory = PeakMemory() if cfg.memory else contextlib.nullcontext(None)
        try:
            with memory:
                start = time.perf_counter()
                session = b.open(subj, specs=specs, threads=threads, timing=True)
                row.load_seconds = time.perf_counter() - start
                row.precision = session.precision
                for _ in range(cfg.warmup):
                    session.run(feeds)
        except UserError as exc:
            row.error = str(exc)
            continue
        if isinstance(memory, PeakMemory) and memory.added is not None:
            row.peak_memory_bytes = memory.added + (_module_bytes(loaded) if b.artifact == "torch" and loaded else 0)
        sessions[b.name] = session

    def timed(session: Session) -> Callable[[], float]:
        return lambda: session.run(feeds).seconds

    timings, errors = interleave(
        {name: timed(session) for name, session in sessions.items()},
        seconds=cfg.seconds,
        min_runs=cfg.min_runs,
        max_runs=cfg.max_runs,
    )
    for name, times in timings.items():
        rows[name].latencies = times
        rows[name].error = errors.get(name, "")
    for row in rows.values():
        row.runs = len(row.latencies)
    for session in sessions.values():
        session.close()
    sessions.clear()
    gc.collect()
    return list(rows.values())


BENCH_HEADERS = ["backend", "prec", "input", "thr", "median ms", "p90 ms", "p99 ms", "runs", "items/s", "x eager",
                 "load ms", "peak MiB"]  # fmt: skip


def bench_rows(report: BenchReport) -> list[list[object]]:
    """The table ``ferry bench`` prints and the HTML report shows."""
    out: list[list[object]] = []
    for r in report.rows:
        if not r.ok:
            failed: list[object] = [r.backend, r.precision, r.shape, r.threads or "-", f"error: {r.error}"]
            out.append(failed + [""] * 7)
            continue
        out.append(
            [
                r.backend,
                r.precision,
                r.shape,
                r.threads or "-",
                1e3 * r.median,
                1e3 * r.stat(90),
                1e3 * r.stat(99),
                r.runs,
                r.throughput,
                "" if r.speedup_vs_eager is None else f"{r.speedup_vs_eager:.2f}x",
                1e3 * r.load_seconds,
                "" if r.peak_memory_bytes is None else r.peak_memory_bytes / 2**20,
            ]
        )
    return out


def write_bench_report(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """A self-contained HTML page: the table, median latency bars per input size, the machine."""
    from ferry.machine import describe
    from ferry.report import esc, table, write_html

    groups: dict[tuple[str, int], list[BenchRow]] = {}
    for r in report.rows:
        if r.ok:
            groups.setdefault((r.shape, r.threads), []).append(r)
    charts = []
    for (shape, threads), rows in groups.items():
        worst = max(r.median for r in rows)
        bars = "".join(
            '<div style="display:flex;align-items:center;gap:.4rem;font-size:.85rem">'
            f'<span style="width:11rem;text-align:right">{esc(r.backend)} ({esc(r.precision)})</span>'
            f'<span style="background:{"#c77c2b" if r.backend == "torch" else "#4a7bd0"};height:.9rem;'
            f'width:{360 * r.median / worst:.1f}px"></span>'
            f"<span>{1e3 * r.median:.3g} ms"
            + ("" if r.speedup_vs_eager is None else f" ({r.speedup_vs_eager:.2f}x eager)")
            + "</span></div>"
            for r in sorted(rows, key=lambda r: r.median)
        )
        charts.append(f"<figure><figcaption>{esc(shape)}, threads {threads or 'default'}</figcaption>{bars}</figure>")
    m = report.machine
    machine_rows = [
        ["CPU", m["cpu"]],
        ["cores (logical / physical / usable)", f"{m['logical_cores']} / {m['physical_cores']} / {m['usable_cores']}"],
        ["ISA", ", ".join(m["isa"]) or "-"],
        ["memory", "-" if not m.get("memory_bytes") else f"{m['memory_bytes'] / 2**30:.1f} GiB"],
        ["OS", m["os"]],
    ] + [[k, v] for k, v in sorted(report.versions.items())]
    cfg = report.config
    method = (
        f"{cfg['warmup']} warm-up runs, then interleaved rounds (rotating order) until {cfg['seconds']} s per"
        f" configuration and at least {cfg['min_runs']} runs. Peak memory: resident memory added while loading and"
        " warming up (plus the module's weights for eager)."
    )
    sections = [
        ("Median latency by backend and input", "".join(charts) or "<p>nothing ran</p>"),
        ("Results", table(BENCH_HEADERS, bench_rows(report)) + f'<p class="muted">{esc(method)}</p>'),
        ("Machine", table(["", ""], machine_rows)),
    ]
    return write_html(path, f"ferry bench: {report.source}", sections, subtitle=f"{describe(m)};")
