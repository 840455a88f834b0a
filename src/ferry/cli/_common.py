"""Shared CLI plumbing: the console, JSON output and option types used by several commands."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ferry._io import write_json_atomic
from ferry.specs import InputSpec, parse_input_specs


def _width(stream: object) -> int | None:
    """Rich wraps piped output at 80 columns; tables read better at 120 in logs and files."""
    isatty = getattr(stream, "isatty", None)
    if "COLUMNS" in os.environ or (isatty is not None and isatty()):
        return None
    return 120


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))

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
    return parse_input_specs(texts) if texts else None


def emit_json(target: str | None, data: Any) -> None:
    """Write ``data`` to ``target`` ('-' prints it to stdout)."""
    if target is None:
        return
    if target == "-":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    write_json_atomic(target, data)
    err_console.print(f"[dim]wrote {target}[/dim]")


def quiet_human(json_target: str | None) -> bool:
    """True when JSON goes to stdout, so the human output must stay out of it."""
    return json_target == "-"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@contextlib.contextmanager
def status(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr for a slow step (nothing when the output is machine-read)."""
    if quiet or not err_console.is_terminal:
        yield
        return
    with err_console.status(message + "...", spinner="dots"):
        yield
