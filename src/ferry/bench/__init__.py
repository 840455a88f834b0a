"""``ferry bench``: PyTorch eager and every runtime timed in interleaved rounds, with ratios to eager."""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ferry.backends import REGISTRY, Backend, Session
from ferry.bench._configurations import configurations, default_backends, resolve_subject, shape_label, static_batch
from ferry.bench._noise import (
    BUSY_LOAD_PER_CPU,
    NOISY_RELATIVE_IQR,
    BenchWarning,
    LoadWatch,
    MachineLoad,
    noise_warnings,
)
from ferry.bench._report import BENCH_HEADERS, bench_rows, write_bench_report
from ferry.bench._results import BenchConfig, BenchReport, BenchRow
from ferry.bench._timing import interleave
from ferry.errors import UserError
from ferry.machine import PeakMemory, library_versions, machine
from ferry.models import LoadedModel
from ferry.samples import random_inputs
from ferry.specs import InputSpec
from ferry.subject import Subject

__all__ = [
    "BENCH_HEADERS",
    "BUSY_LOAD_PER_CPU",
    "NOISY_RELATIVE_IQR",
    "BenchConfig",
    "BenchReport",
    "BenchRow",
    "BenchWarning",
    "MachineLoad",
    "bench",
    "bench_rows",
    "default_backends",
    "interleave",
    "noise_warnings",
    "write_bench_report",
]


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
    watch = LoadWatch()  # before anything of ours runs, so that it reads the other processes' load
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
        needs_module = [b.name for b in chosen if b.supports(subj)] if loaded is None else []
        if needs_module:
            raise UserError(
                f"{', '.join(needs_module)} needs the PyTorch model: give --model SOURCE with an .onnx file"
            )
        if not subj.specs and not cfg.inputs:
            raise UserError(f"no input shapes known for {path}; give --input specs")
        onnx_names = [i.name for i in subj.graph_inputs]
        configs = configurations(cfg, subj.specs, onnx_names, static_batch(subj.proto))
        rows: list[BenchRow] = []
        for specs in configs:
            for threads in cfg.threads:
                label = shape_label(specs)
                if on_progress is not None:
                    on_progress(f"{label}, threads {threads or 'default'}")
                rows += _bench_one(cfg, chosen, subj, specs, threads)
        _ratios_to_eager(rows)
        load = watch.stop()
        source = loaded.source if loaded is not None else str(path)
        return BenchReport(
            source=source,
            onnx_path=path if export_seconds is None else Path("(exported)"),
            rows=rows,
            machine=machine(),
            versions=library_versions() | {b.name: b.version() or "" for b in chosen},
            config=_settings(cfg, chosen, configs),
            export_seconds=export_seconds,
            load=load,
            warnings=noise_warnings(load, {r.label: r.latencies for r in rows if r.ok}),
        )


def _settings(cfg: BenchConfig, chosen: Sequence[Backend], configs: Sequence[Sequence[InputSpec]]) -> dict[str, Any]:
    """What was timed and how, as the report records it."""
    return {
        "backends": [b.name for b in chosen],
        "inputs": [shape_label(c) for c in configs],
        "threads": list(cfg.threads),
        "seconds": cfg.seconds,
        "warmup": cfg.warmup,
        "min_runs": cfg.min_runs,
        "max_runs": cfg.max_runs,
        "interleaved": True,
    }


def _ratios_to_eager(rows: list[BenchRow]) -> None:
    """Each row's speed-up over PyTorch eager at the same shape and threads, from the same run."""
    for r in rows:
        eager = next((e for e in rows if e.backend == "torch" and (e.shape, e.threads) == (r.shape, r.threads)), None)
        if eager is not None and eager.ok and r.ok:
            r.speedup_vs_eager = eager.median / r.median


def _bench_one(
    cfg: BenchConfig, backends: Sequence[Backend], subj: Subject, specs: Sequence[InputSpec], threads: int
) -> list[BenchRow]:
    """Load every backend, warm it up, then time interleaved rounds until the budget is spent."""
    loaded = subj.loaded
    feeds = random_inputs(specs, cfg.seed)
    batch = specs[0].shape[0] if specs and specs[0].shape else 1
    label = shape_label(specs)
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


def _module_bytes(loaded: LoadedModel) -> int:
    return sum(t.numel() * t.element_size() for t in (*loaded.module.parameters(), *loaded.module.buffers()))
