"""Human and machine output shared by the commands: the consoles, JSON, sizes, spinners."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console

from ferry._io import refuse_if_input, write_json_atomic


def _width(stream: object) -> int | None:
    """Rich wraps piped output at 80 columns; tables read better at 120 in logs and files."""
    isatty = getattr(stream, "isatty", None)
    if "COLUMNS" in os.environ or (isatty is not None and isatty()):
        return None
    return 120


console = Console(highlight=False, width=_width(sys.stdout))


err_console = Console(stderr=True, highlight=False, width=_width(sys.stderr))


def emit_json(target: str | None, data: Any) -> None:
    """Write ``data`` to ``target`` ('-' prints it to stdout)."""
    if target is None:
        return
    if target == "-":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    write_json_atomic(target, data)
    err_console.print(f"[dim]wrote {target}[/dim]")


def refuse_input_outputs(*targets: str | os.PathLike[str] | None) -> None:
    """Before any work: refuse an output (``--json``, ``--report``, ``-o``) that is an input."""
    for target in targets:
        refuse_if_input(target)


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
