"""``ferry check``, ``ferry inspect`` and ``ferry view``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry.check import check
from ferry.cli._common import InputOpt, JsonOpt, console, emit_json, human_bytes, quiet_human, specs_from
from ferry.errors import UserError
from ferry.inspect_ import inspect_model
from ferry.view import stop_view, view

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="ONNX file.")]


def check_cmd(file: FileArg, json_out: JsonOpt = None) -> None:
    """Validate an ONNX file with onnx.checker (full check) and shape inference. Exit 1 if invalid."""
    result = check(file)
    if result and not quiet_human(json_out):
        console.print(f"[green]valid[/green] {file}: {escape(result.message)}")
        if result:
            opsets = ", ".join(f"{k} {v}" for k, v in result.opsets.items())
            console.print(
                f"  IR version {result.ir_version}, opsets {opsets}, {result.nodes} nodes,"
                f" {result.inferred_tensors} intermediate shapes inferred; producer {result.producer}"
            )
    emit_json(json_out, result.to_dict())
    if not result:
        raise UserError(f"{file} is not a valid ONNX model: {result.message}")


def inspect_cmd(
    file: FileArg,
    input: InputOpt = None,
    graph: Annotated[bool, typer.Option("--graph", help="Print the readable graph (printable_graph).")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Show inputs/outputs, opsets, parameters, an operator histogram and estimated FLOPs."""
    info = inspect_model(file, inputs=specs_from(input), graph=graph)
    emit_json(json_out, info.to_dict())
    if quiet_human(json_out):
        return
    console.print(
        f"[bold]{file}[/bold]  producer {info.producer}, IR {info.ir_version}, opsets "
        + ", ".join(f"{k} {v}" for k, v in info.opsets.items())
    )
    io = Table(title="inputs and outputs", title_justify="left")
    for col in ("", "name", "dtype", "shape"):
        io.add_column(col)
    for kind, items in (("input", info.inputs), ("output", info.outputs)):
        for t in items:
            io.add_row(kind, t.name, t.dtype, escape("[" + ", ".join(str(d) for d in t.shape) + "]"))
    console.print(io)
    console.print(
        f"parameters: {info.parameters:,} ({human_bytes(info.parameter_bytes)}); file {human_bytes(info.file_bytes)}"
    )
    ops = Table(title="operators", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    ops.add_column("GFLOPs", justify="right")
    by_op = info.flops.by_op if info.flops else {}
    for op, n in info.ops.items():
        ops.add_row(op, str(n), f"{by_op[op] / 1e9:.3f}" if op in by_op else "-")
    console.print(ops)
    if info.flops:
        shapes = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in info.flops.input_shapes.items())
        extra = (
            f" ({info.flops.unknown_nodes} nodes without shape info not counted)" if info.flops.unknown_nodes else ""
        )
        console.print(f"estimated FLOPs at {shapes}: {info.flops.total / 1e9:.3f} G{extra}")
    for note in info.notes:
        console.print(f"[dim]{note}[/dim]")
    if info.metadata:
        console.print(
            f"ferry metadata: exported from {info.metadata.get('source')} by the"
            f" {info.metadata.get('exporter')} exporter, ferry {info.metadata.get('version')}"
        )
    if graph:
        console.print(info.graph, markup=False)


def view_cmd(
    file: FileArg,
    port: Annotated[int, typer.Option(metavar="N", help="Port on 127.0.0.1.")] = 8080,
    browse: Annotated[bool, typer.Option("--browse/--no-browse", help="Open a web browser.")] = True,
) -> None:
    """Open the model in Netron, served on 127.0.0.1 until Ctrl-C."""
    address = view(file, port=port, browse=browse)
    console.print(f"Netron is serving {file} at http://{address[0]}:{address[1]} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        stop_view(address)
