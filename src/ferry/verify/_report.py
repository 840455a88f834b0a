"""The parity table and the self-contained HTML report."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.verify._results import VerifyReport


def parity_rows(report: VerifyReport) -> list[list[object]]:
    """One row per backend and output: the worst numbers over every shape and sample."""
    from ferry.report import Raw, verdict

    rows: list[list[object]] = []
    for name, b in report.backends.items():
        precision = str(b.settings.get("precision", "fp32"))
        worst = b.worst()
        if not worst:
            rows.append([name, precision, "-", Raw(verdict(False)), "-", "-", "-", "-", "; ".join(b.errors)])
        for out, s in worst.items():
            tol = "exact" if s.rtol is None else f"{s.rtol:.0e}/{s.atol:.0e}"
            mark = Raw(verdict(b.ok)) if b.gating else f"{'pass' if b.ok else 'differs'} (info)"
            rows.append(
                [
                    name,
                    precision,
                    out,
                    mark,
                    s.max_abs_diff,
                    s.max_rel_diff,
                    s.mismatch_fraction,
                    s.cosine_similarity,
                    tol,
                ]
            )
    return rows


PARITY_HEADERS = ["backend", "precision", "output", "verdict", "max abs", "max rel", "mismatch", "cosine", "rtol/atol"]


def write_report(report: VerifyReport, path: str | os.PathLike[str]) -> Path:
    """Write a self-contained HTML page with the parity table and the shapes checked."""
    from ferry.report import esc, table, write_html

    shape_rows = [
        [i + 1, " ".join(f"{name}={'x'.join(map(str, dims))}" for name, dims in s.items())]
        for i, s in enumerate(report.shapes)
    ]
    shapes = table(["#", "input shapes"], shape_rows)
    errors = "".join(
        f'<p class="fail">{esc(name)}: {esc(e)}</p>' for name, b in report.backends.items() for e in b.errors
    )
    if report.first_divergence:
        rows = [[k, str(v)] for k, v in report.first_divergence.items()]
        errors += "<h3>First divergence</h3>" + table(["", ""], rows)
    sections = [
        ("Parity with PyTorch eager", table(PARITY_HEADERS, parity_rows(report)) + errors),
        *_photo_sections(report),
        ("Error histograms (|runtime - PyTorch| per element, worst sample)", _histograms(report)),
        (f"Shapes checked ({report.samples} random samples each)", shapes),
    ]
    return write_html(path, f"ferry verify: {report.source}", sections, subtitle=str(report.onnx_path))


def _photo_sections(report: VerifyReport) -> list[tuple[str, str]]:
    """The task's own section (for super-resolution: every runtime on real photos)."""
    if report.photos is None:
        return []
    from ferry.report import table

    return [(report.photos.title, table(report.photos.headers, report.photos.rows()) + report.photos.html())]


def _histograms(report: VerifyReport) -> str:
    """Inline bar charts (plain HTML, no scripts) of each output's error distribution."""
    from ferry.compare import HISTOGRAM_LABELS
    from ferry.report import esc

    parts = []
    for name, b in report.backends.items():
        for out, s in b.worst().items():
            if not s.histogram:
                continue
            total = max(1, sum(s.histogram))
            bars = "".join(
                f'<div style="display:flex;align-items:center;gap:.4rem;font-size:.8rem">'
                f'<span style="width:4rem;text-align:right">{esc(label)}</span>'
                f'<span style="background:#4a7bd0;height:.8rem;width:{300 * n / total:.1f}px"></span>'
                f"<span>{n}</span></div>"
                for label, n in zip(HISTOGRAM_LABELS, s.histogram, strict=True)
            )
            parts.append(f"<figure><figcaption>{esc(name)} / {esc(out)}</figcaption>{bars}</figure>")
    return "".join(parts) or "<p>no outputs compared</p>"
