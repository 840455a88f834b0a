"""``ferry package``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ferry._io import add_inputs
from ferry.cli._options import ArgOpt, InputOpt, JsonOpt, WeightsOpt, specs_from
from ferry.cli._render import console, emit_json, human_bytes, quiet_human, refuse_input_outputs, status
from ferry.package.targets import NAMES


def package_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="zoo:NAME, file.py:Attr, package.module:Attr, or an .onnx file from ferry."
        ),
    ],
    target: Annotated[str, typer.Option("--target", "-t", metavar="TARGET", help=f"One of: {', '.join(NAMES)}.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Package folder to create.")],
    input: InputOpt = None,
    arg: ArgOpt = None,
    weights: WeightsOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing package folder.")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Package a model for a deployment target: the runtime's file, manifest.json and a README."""
    from ferry.package import package
    from ferry.specs import parse_kwargs

    add_inputs(model)
    refuse_input_outputs(json_out)
    with status(f"packaging for {target}", quiet_human(json_out)):
        result = package(
            model,
            output,
            target,
            inputs=specs_from(input),
            args=parse_kwargs(arg or []),
            weights=weights,
            overwrite=overwrite,
        )
    emit_json(json_out, result.to_dict())
    if quiet_human(json_out):
        return
    console.print(f"{escape(target)} package in {escape(str(result.folder))} ({human_bytes(result.size_bytes)}):")
    for name, size in result.files.items():
        console.print(f"  {escape(name)}  {human_bytes(size)}")
    if result.manifest.get("required_operators"):
        console.print(f"operators: {escape(', '.join(result.manifest['required_operators']))}")
