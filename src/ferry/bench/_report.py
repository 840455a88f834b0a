"""The benchmark table and the self-contained HTML report."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.bench._results import BenchReport, BenchRow

BENCH_HEADERS = ["backend", "prec", "input", "thr", "median ms", "IQR ms", "p90 ms", "p99 ms", "runs", "items/s",
                 "x eager", "load ms", "peak MiB"]  # fmt: skip


def bench_rows(report: BenchReport) -> list[list[object]]:
    """The table ``ferry bench`` prints and the HTML report shows."""
    out: list[list[object]] = []
    for r in report.rows:
        if not r.ok:
            failed: list[object] = [r.backend, r.precision, r.shape, r.threads or "-", f"error: {r.error}"]
            out.append(failed + [""] * (len(BENCH_HEADERS) - len(failed)))
            continue
        out.append(
            [
                r.backend,
                r.precision,
                r.shape,
                r.threads or "-",
                1e3 * r.median,
                1e3 * r.iqr,
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
            f"<span>{1e3 * r.median:.3g} ms, IQR {1e3 * r.stat(25):.3g}-{1e3 * r.stat(75):.3g} ms"
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
        ["1-minute load average", _load_text(report)],
    ] + [[k, v] for k, v in sorted(report.versions.items())]
    cfg = report.config
    method = (
        f"{cfg['warmup']} warm-up runs, then interleaved rounds (rotating order) until {cfg['seconds']} s per"
        f" configuration and at least {cfg['min_runs']} runs. IQR: the interquartile range of the runs (p75 - p25),"
        " the spread of their middle half. Peak memory: resident memory added while loading and"
        " warming up (plus the module's weights for eager)."
    )
    sections = [
        ("Median latency by backend and input", _warnings_html(report) + ("".join(charts) or "<p>nothing ran</p>")),
        ("Results", table(BENCH_HEADERS, bench_rows(report)) + f'<p class="muted">{esc(method)}</p>'),
        ("Machine", table(["", ""], machine_rows)),
    ]
    return write_html(path, f"ferry bench: {report.source}", sections, subtitle=f"{describe(m)};")


def _warnings_html(report: BenchReport) -> str:
    """The noise warnings, in a yellow box above the numbers they qualify."""
    from ferry.report import esc

    return "".join(
        '<p style="background:#fff4ce;border:1px solid #e0b400;padding:.4rem .6rem">'
        f"<strong>warning ({esc(w.kind)}):</strong> {esc(w.message)}</p>"
        for w in report.warnings
    )


def _load_text(report: BenchReport) -> str:
    """The load average readings around the timing, for the machine table."""
    load = report.load
    if load is None or load.before is None:
        return "not available on this OS"
    text = f"{load.before:.2f} before"
    if load.after is not None:
        text += f", {load.after:.2f} after (this process: {load.own_cores:.1f} cores busy on average)"
    per_cpu = load.per_cpu
    if per_cpu is not None:
        text += f"; other processes {per_cpu:.2f} per CPU ({'busy' if load.busy else 'quiet'})"
    return text
