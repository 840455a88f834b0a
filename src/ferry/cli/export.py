"""``ferry export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ferry._defaults import DEFAULT_OPSET
from ferry.cli._options import ArgOpt, InputOpt, JsonOpt, WeightsOpt, specs_from
from ferry.cli._render import console, emit_json, human_bytes, quiet_human, status


def export_cmd(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="zoo:NAME, path/to/file.py:Attr or package.module:Attr.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="ONNX file to write.")],
    input: InputOpt = None,
    arg: ArgOpt = None,
    weights: WeightsOpt = None,
    opset: Annotated[int, typer.Option(metavar="N", help="ai.onnx opset version.")] = DEFAULT_OPSET,
    exporter: Annotated[
        str, typer.Option(metavar="NAME", help="auto (dynamo, then TorchScript), dynamo or torchscript.")
    ] = "auto",
    constant_folding: Annotated[
        bool, typer.Option("--constant-folding/--no-constant-folding", help="Fold constant subgraphs.")
    ] = True,
    rgb_io: Annotated[
        bool,
        typer.Option("--rgb-io", help="Super-resolution: export the whole uint8 RGB-in, RGB-out pipeline."),
    ] = False,
    json_out: JsonOpt = None,
) -> None:
    """Export a PyTorch model to ONNX with named inputs/outputs and dynamic axes."""
    from ferry.export import ExportConfig, export
    from ferry.specs import parse_kwargs

    cfg = ExportConfig(opset=opset, exporter=exporter, constant_folding=constant_folding)  # type: ignore[arg-type]
    quiet = quiet_human(json_out)
    with status("exporting", quiet):
        result = export(
            model,
            output,
            inputs=specs_from(input),
            args=parse_kwargs(arg or []),
            weights=weights,
            config=cfg,
            rgb_io=rgb_io,
        )
    if not quiet:
        if result.fallback_reason:
            console.print(
                f"[yellow]dynamo exporter failed[/yellow] ({escape(result.fallback_reason)}); used TorchScript"
            )
        console.print(
            f"[green]exported[/green] {result.source} -> {result.path} with the {result.exporter} exporter"
            f" (opset {result.opset}, {human_bytes(result.size_bytes)}, {result.seconds:.1f} s)"
        )
        for spec in result.inputs:
            dyn = ", ".join(f"{a}={n}" for a, n in spec.dynamic_axes.items()) or "static"
            console.print(f"  input  {spec.name}: {spec.dtype}{list(spec.shape)}  dynamic: {dyn}")
        for name in result.outputs:
            console.print(f"  output {name}")
        for w in result.warnings:
            console.print(f"  [yellow]warning[/yellow] {escape(w)}")
    emit_json(json_out, result.to_dict())
