"""``ferry inspect``: inputs/outputs, opsets, parameters, an operator histogram and FLOPs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry.cli._options import InputOpt, JsonOpt, OnnxFileArg, specs_from
from ferry.cli._render import console, emit_json, human_bytes, quiet_human, refuse_input_outputs


def inspect_cmd(
    file: OnnxFileArg,
    input: InputOpt = None,
    graph: Annotated[bool, typer.Option("--graph", help="Print the readable graph (printable_graph).")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Show inputs/outputs, opsets, parameters, an operator histogram and estimated FLOPs."""
    from ferry.inspect_ import inspect_model

    refuse_input_outputs(json_out)
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
    if info.metadata.get("source"):
        console.print(
            f"ferry metadata: exported from {info.metadata.get('source')} by the"
            f" {info.metadata.get('exporter')} exporter, ferry {info.metadata.get('version')}"
        )
    if graph:
        console.print(info.graph, markup=False)
