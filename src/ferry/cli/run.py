"""``ferry run``: an ONNX file once on a runtime, with given or generated inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ferry._io import add_inputs
from ferry.cli._options import JsonOpt
from ferry.cli._render import console, emit_json, quiet_human


def run_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="ONNX file.")],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="FILE|SPEC",
            help="x.npy / name=x.npy / inputs.npz, or a shape spec for random data.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the outputs to this .npz.")
    ] = None,
    backend: Annotated[str, typer.Option(metavar="NAME", help="Runtime to run on.")] = "onnxruntime",
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for random inputs.")] = 0,
    json_out: JsonOpt = None,
) -> None:
    """Run an ONNX model on arrays from files, or on random inputs from shape specs."""
    add_inputs(file, *(input or []))  # no output may land on what the command reads
    from ferry.onnx_file import input_names
    from ferry.run import run, save_outputs
    from ferry.samples import is_array_file, read_arrays
    from ferry.specs import parse_input_specs

    texts = input or []
    files = [t for t in texts if is_array_file(t)]
    specs = [t for t in texts if not is_array_file(t)]
    feeds = None
    if files:
        names = input_names(file)
        feeds = read_arrays(files, names)
    result = run(file, feeds, specs=parse_input_specs(specs) if specs else None, backend=backend, seed=seed)
    if output is not None:
        save_outputs(result.outputs, output)
    emit_json(json_out, result.to_dict())
    if quiet_human(json_out):
        return
    table = Table(title=f"{file} on {backend} ({result.seconds * 1000:.1f} ms)", title_justify="left")
    for col in ("output", "shape", "dtype", "min", "max", "mean"):
        table.add_column(col)
    for row in result.summary():
        table.add_row(*(f"{v:.5g}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    if output is not None:
        console.print(f"wrote {output}")
