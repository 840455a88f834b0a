"""``ferry export``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ferry._defaults import DEFAULT_OPSET
from ferry._io import add_inputs
from ferry.cli._options import ArgOpt, InputOpt, JsonOpt, WeightsOpt, specs_from
from ferry.cli._render import console, emit_json, human_bytes, quiet_human, status

if TYPE_CHECKING:
    from ferry.export import ExportResult
    from ferry.specs import TensorInfo


def _dims(info: TensorInfo) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in info.shape) + "]"


def _print(result: ExportResult) -> None:
    """The file's inputs and outputs as the file declares them (a name is a dynamic dim)."""
    if result.fallback_reason:
        console.print(f"[yellow]dynamo exporter failed[/yellow] ({escape(result.fallback_reason)}); used TorchScript")
    console.print(
        f"[green]exported[/green] {result.source} -> {result.path} with the {result.exporter} exporter"
        f" (opset {result.opset}, {human_bytes(result.size_bytes)}, {result.seconds:.1f} s)"
    )
    examples = {s.name: "x".join(map(str, s.shape)) for s in result.inputs}
    for info in result.graph_inputs:
        example = f"  example {examples[info.name]}" if info.name in examples else ""
        console.print(f"  input  {escape(info.name)}: {info.dtype}{escape(_dims(info))}{example}")
    for info in result.graph_outputs:
        console.print(f"  output {escape(info.name)}: {info.dtype}{escape(_dims(info))}")
    for note in result.notes:
        console.print(f"  [dim]note[/dim] {escape(note)}")
    for w in result.warnings:
        console.print(f"  [yellow]warning[/yellow] {escape(w)}")
    if result.log:
        console.print(f"  [dim]exporter log: {escape(str(result.log))}[/dim]")


def export_cmd(
    ctx: typer.Context,
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
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Decoder LMs returning a KV cache: export one decoding step with past_key_values.N.key/value"
            " inputs and present.N.key/value outputs (dynamic past length); --no-cache: logits only.",
        ),
    ] = True,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Write everything the exporters printed, warned and logged (and each failure's traceback) to FILE."
            " --debug shows it on the terminal instead.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """Export a PyTorch model to ONNX with named inputs/outputs and dynamic axes."""
    add_inputs(model)  # no output may land on what the command reads
    from ferry.export import ExportConfig, export
    from ferry.specs import parse_kwargs

    cfg = ExportConfig(
        opset=opset,
        exporter=exporter,  # type: ignore[arg-type]
        constant_folding=constant_folding,
        kv_cache=cache,
        log=log,
        verbose=bool(ctx.find_root().params.get("debug")),
    )
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
        _print(result)
    emit_json(json_out, result.to_dict())
