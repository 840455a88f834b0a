"""``ferry view``: the graph in Netron, served on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ferry.cli._options import OnnxFileArg
from ferry.cli._render import console


def view_cmd(
    file: OnnxFileArg,
    port: Annotated[int, typer.Option(metavar="N", help="Port on 127.0.0.1.")] = 8080,
    browse: Annotated[bool, typer.Option("--browse/--no-browse", help="Open a web browser.")] = True,
) -> None:
    """Open the model in Netron, served on 127.0.0.1 until Ctrl-C."""
    from ferry.view import stop_view, view

    address = view(file, port=port, browse=browse)
    console.print(f"Netron is serving {file} at http://{address[0]}:{address[1]} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        stop_view(address)
