"""``ferry demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli._options import JsonOpt
from ferry.cli._render import console, emit_json, quiet_human
from ferry.errors import VerificationError


def demo_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the model, images and report.")
    ] = Path("ferry-demo"),
    json_out: JsonOpt = None,
) -> None:
    """Export, check, verify and run the super-resolution model on the bundled cat photo."""
    from ferry.superres.demo import run_demo

    quiet = quiet_human(json_out)
    result = run_demo(out, step=None if quiet else (lambda msg: console.print(f"[dim]-[/dim] {escape(msg)}")))
    emit_json(json_out, result.to_dict())
    if not quiet:
        v = result.verify.backends["onnxruntime"]
        worst = max(s.max_abs_diff for s in v.worst().values())
        table = Table(title="ferry demo: zoo:superres x3 on the cat", title_justify="left")
        table.add_column("step")
        table.add_column("result")
        table.add_row(
            "export", f"{result.export.exporter} exporter, opset {result.export.opset}, dynamic batch/height/width"
        )
        table.add_row("check", "valid" if result.check else f"[red]invalid[/red]: {escape(result.check.message)}")
        table.add_row(
            "verify (onnxruntime)",
            ("[green]PASS[/green]" if v.ok else "[red]FAIL[/red]")
            + f" max abs diff {worst:.2e} over {len(result.verify.shapes)} shapes",
        )
        table.add_row("PSNR bicubic", f"{result.psnr_bicubic:.2f} dB")
        table.add_row("PSNR ferry", f"{result.psnr_ferry:.2f} dB ({result.gain:+.2f} dB)")
        table.add_row(
            f"PSNR {result.stronger_model[4:]}",
            f"{result.psnr_stronger:.2f} dB ({result.psnr_stronger - result.psnr_bicubic:+.2f} dB;"
            " ferry upscale's default)",
        )
        table.add_row("speed", f"ONNX Runtime {result.timings['speedup_vs_eager']:.1f}x PyTorch eager on the full cat")
        console.print(table)
        console.print(f"report: {result.files['report_html']}")
    if not result:
        raise VerificationError("the demo did not pass: see the report for the failing step")
