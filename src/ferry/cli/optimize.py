"""``ferry optimize``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry._io import add_inputs
from ferry.cli._options import JsonOpt
from ferry.cli._render import console, emit_json, human_bytes, quiet_human, status


def optimize_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The ONNX file to optimize.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="The optimized .onnx to write.")],
    quantize: Annotated[
        str | None,
        typer.Option(metavar="MODE", help="int8 (static, QDQ), fp16, or dynamic (int8 weights).", show_default=False),
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Images (through the stored preprocessing) or .npy/.npz samples to calibrate int8 on.",
            show_default=False,
        ),
    ] = None,
    method: Annotated[str, typer.Option(metavar="NAME", help="Calibration: minmax, entropy or percentile.")] = (
        "percentile"
    ),
    keep_float: Annotated[
        str,
        typer.Option(metavar="NODES", help="Nodes left in float: 'last' (the output layer), names, or 'none'."),
    ] = "last",
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor", help="int8 weight scales.")] = True,
    level: Annotated[
        str, typer.Option(metavar="LEVEL", help="ONNX Runtime offline optimization: none, basic, extended.")
    ] = ("extended"),
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="Simplify with onnxslim first.")] = True,
    max_psnr_drop: Annotated[
        float, typer.Option(metavar="DB", help="Super-resolution gate: largest PSNR loss on photos.")
    ] = 0.1,
    min_cosine: Annotated[
        float | None,
        typer.Option(
            metavar="X", help="Tensor gate for other models (default 0.999 fp16, 0.99 int8).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Write the file even if it fails the gate.")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Simplify, optimize and quantize an ONNX file; verify it against the original. Exit 2 if refused."""
    add_inputs(file)  # no output may land on what the command reads
    from ferry.optimize import OptimizeConfig, optimize, refuse

    keep = () if keep_float.strip() == "none" else tuple(k.strip() for k in keep_float.split(",") if k.strip())
    cfg = OptimizeConfig(
        quantize=quantize,
        calibration=calibration,
        method=method,
        per_channel=per_channel,
        keep_float=keep,
        simplify=simplify,
        level=level,
        max_psnr_drop=max_psnr_drop,
        min_cosine=min_cosine,
        force=force,
    )
    quiet = quiet_human(json_out)
    with status("optimizing and verifying", quiet):
        result = optimize(file, output, cfg)
    emit_json(json_out, result.to_dict())
    if not quiet:
        console.print(f"steps: {escape(', '.join(result.steps))}")
        if result.kept_float:
            console.print(f"kept in float: {escape(', '.join(result.kept_float))}")
        ratio = f", {result.latency_ratio:.2f}x the original's speed on onnxruntime" if result.latency_ratio else ""
        console.print(
            f"size {human_bytes(result.size_before)} -> {human_bytes(result.size_after)}, "
            f"{sum(result.ops_before.values())} -> {sum(result.ops_after.values())} nodes{ratio}"
        )
        table = Table(title=f"optimized vs original on {result.compared_on}", title_justify="left")
        for col in ("output", "max abs", "max rel", "cosine"):
            table.add_column(col)
        for s in result.stats:
            table.add_row(
                escape(s.name), f"{s.max_abs_diff:.3g}", f"{s.max_rel_diff:.3g}", f"{s.cosine_similarity:.6f}"
            )
        console.print(table)
        g = result.gate
        extra = ""
        if g.metric == "psnr_drop_db":
            extra = f" (PSNR {g.details['psnr_original_db']:.3f} -> {g.details['psnr_optimized_db']:.3f} dB on bundled photos)"
        verdict = "[green]PASS[/green]" if g.passed else "[red]FAIL[/red]"
        console.print(f"gate: {escape(g.describe())}{escape(extra)} {verdict}")
        if result.written:
            console.print(f"wrote {result.output}")
    if not result:
        refuse(result)
