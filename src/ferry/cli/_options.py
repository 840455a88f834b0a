"""Option and argument types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferry._io import add_inputs

if TYPE_CHECKING:
    from ferry.specs import InputSpec


def _an_input(value: Path | None) -> Path | None:
    """Parameter callback: the path is read by the command, so no output may land on it."""
    add_inputs(value)
    return value


InputOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        metavar="SPEC",
        help="Input spec, one per forward() argument: 1,3,224,224 | batch=1,3,height=224,width=224 | 2,12:int64:0:100.",
        show_default=False,
    ),
]


ArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        metavar="KEY=VALUE",
        help="Constructor argument key=value (value parsed as a Python literal). Repeatable.",
        show_default=False,
    ),
]


WeightsOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        metavar="FILE",
        help="State dict to load: .safetensors, or .pt/.pth (tensors only).",
        show_default=False,
        callback=_an_input,
    ),
]


ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", metavar="FILE", help="Write a self-contained HTML report.", show_default=False),
]


JsonOpt = Annotated[
    str | None,
    typer.Option(
        "--json", metavar="FILE", help="Write the result as JSON to this file ('-' for stdout).", show_default=False
    ),
]


def specs_from(texts: list[str] | None) -> list[InputSpec] | None:
    """``--input`` values as specs (``None`` when none were given)."""
    from ferry.specs import parse_input_specs

    return parse_input_specs(texts) if texts else None


OnnxFileArg = Annotated[Path, typer.Argument(metavar="FILE", help="ONNX file.", callback=_an_input)]
