"""The parity table and the self-contained HTML report."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.verify._results import VerifyReport


def parity_rows(report: VerifyReport) -> list[list[object]]:
    """One row per backend and output: the worst numbers over every shape and sample.

    Columns (:data:`PARITY_HEADERS`): the largest difference from PyTorch float32, and under the
    noise rule the runtime's error against PyTorch float64 beside PyTorch float32's own and the
    bound it had to stay within.
    """
    from ferry.report import Raw, verdict

    rows: list[list[object]] = []
    for name, b in report.backends.items():
        precision = str(b.settings.get("precision", "fp32"))
        worst = b.worst()
        if b.refused or not worst:
            reason = b.refused or "; ".join(b.errors) or "no output compared"
            mark: object = f"{b.status}: {_short(reason)}" if b.status in ("refused", "error") else Raw(verdict(False))
            rows.append([name, precision, "-", mark, "-", "-", "-", "-", "-", "-"])
            continue
        for out, s in worst.items():
            if b.status == "error":
                mark = "error (see below)"
            else:
                mark = Raw(verdict(b.ok)) if b.gating else f"{'pass' if b.ok else 'differs'} (info)"
            rule = {"noise": "noise", "exact": "exact"}.get(s.rule) or f"{s.rtol:.0e}/{s.atol:.0e}"
            rows.append(
                [
                    name,
                    precision,
                    out,
                    mark,
                    s.max_abs_diff,
                    _or_dash(s.error_vs_float64),
                    _or_dash(s.torch_error),
                    _or_dash(s.allowed),
                    s.cosine_similarity,
                    rule,
                ]
            )
    return rows


def _short(text: str, limit: int = 100) -> str:
    """A table cell's share of a long message (the whole one is in the JSON and below the table)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _or_dash(value: float | None) -> object:
    return "-" if value is None else value


PARITY_HEADERS = [
    "backend",
    "precision",
    "output",
    "verdict",
    "max abs vs torch",
    "error vs float64",
    "torch f32 error",
    "allowed",
    "cosine",
    "rule",
]


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
        ("Parity with PyTorch eager", _rule_note(report) + table(PARITY_HEADERS, parity_rows(report)) + errors),
        *_photo_sections(report),
        ("Error histograms (|runtime - PyTorch| per element, worst sample)", _histograms(report)),
        (f"Shapes checked ({report.samples} random samples each)", shapes),
    ]
    return write_html(path, f"ferry verify: {report.source}", sections, subtitle=str(report.onnx_path))


def _rule_note(report: VerifyReport) -> str:
    """How this report's outputs were judged, and why not against float64 where it could not be."""
    from ferry.report import esc

    if report.reference.get("rule") == "noise":
        text = (
            "Float outputs are judged against PyTorch in float64: a runtime passes when its error there is within"
            " 10x PyTorch float32's own error (torch f32 error), or 8 ulp of the output's largest value (allowed)."
        )
    else:
        text = (
            "Float outputs are judged element-wise against PyTorch float32: |runtime - torch| <= atol + rtol |torch|."
        )
    notes = "".join(f"<br>{esc(n)}" for n in report.reference.get("notes", []))
    return f"<p>{esc(text)}{notes}</p>"


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


def summary_text(report: VerifyReport) -> str:
    """The parity table and each failure's first problem as plain text (assertion messages, logs)."""
    from ferry.report import Raw

    def cell(value: object) -> str:
        if isinstance(value, Raw):
            return "PASS" if ">PASS<" in value else "FAIL"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    rows = [[cell(c) for c in row] for row in parity_rows(report)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(PARITY_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(PARITY_HEADERS, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines += [f"{name}: {problem}" for name, problem in failures(report)]
    return "\n".join(line.rstrip() for line in lines)


def failures(report: VerifyReport) -> list[tuple[str, str]]:
    """(backend, what went wrong) for every gating backend that did not pass: its load or run
    errors, the refusal, and the first problem of each failing output."""
    found: list[tuple[str, str]] = []
    for name, b in report.backends.items():
        if not b.gating or b.ok:
            continue
        if b.refused:
            found.append((name, f"refused: {_short(b.refused, 400)}"))
        found += [(name, _short(err, 400)) for err in b.errors]
        seen: set[str] = set()
        for c in b.checks:
            for s in c.outputs:
                if s.problem and s.name not in seen:
                    seen.add(s.name)
                    found.append((name, f"{c.shape} sample {c.sample}: {s.name}: {s.problem}"))
    return found


def write_junit(report: VerifyReport, path: str | os.PathLike[str]) -> Path:
    """Write a JUnit XML file (one test case per backend) for CI systems that show test results.

    A gating backend that does not pass is a ``failure`` (outputs differ) or an ``error`` (the
    runtime raised); refused and informational backends are ``skipped`` with their reason.
    """
    import xml.etree.ElementTree as ET

    from ferry._io import write_text_atomic

    suite = ET.Element("testsuite", name=f"ferry verify {report.source}", tests=str(len(report.backends)))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    problems = dict[str, list[str]]()
    for name, problem in failures(report):
        problems.setdefault(name, []).append(problem)
    for name, b in report.backends.items():
        seconds = sum(c.seconds for c in b.checks)
        case = ET.SubElement(
            suite, "testcase", classname=f"ferry.verify.{report.onnx_path.name}", name=name, time=f"{seconds:.6f}"
        )
        detail = "\n".join(problems.get(name, []))
        if b.refused and not b.gating:
            ET.SubElement(case, "skipped", message=f"refused: {b.refused}")
            counts["skipped"] += 1
        elif not b.gating:
            ET.SubElement(case, "skipped", message=f"informational: {b.status}")
            counts["skipped"] += 1
        elif b.status == "error":
            ET.SubElement(case, "error", message=detail.splitlines()[0] if detail else "error").text = detail
            counts["errors"] += 1
        elif not b.ok:
            first = detail.splitlines()[0] if detail else f"{name} differs from PyTorch"
            ET.SubElement(case, "failure", message=first).text = summary_text(report)
            counts["failures"] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    ET.indent(suite)
    text = '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    return write_text_atomic(path, text)
