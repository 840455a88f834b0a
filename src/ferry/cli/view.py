"""``ferry view``: the graph in Netron, served on 127.0.0.1."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ferry.cli._options import OnnxFileArg
from ferry.cli._render import console


def view_cmd(
    file: OnnxFileArg,
    port: Annotated[int, typer.Option(metavar="N", help="Port on 127.0.0.1 (0 picks a free one).")] = 8080,
    browse: Annotated[bool, typer.Option("--browse/--no-browse", help="Open a web browser.")] = True,
) -> None:
    """Open the model in Netron, served on 127.0.0.1 until Ctrl-C.

    Only the model and its external data files are served, under a random path; requests not
    addressed to 127.0.0.1 or localhost are refused.
    """
    from ferry.view import view

    viewer = view(file, port=port, browse=browse)
    try:
        console.print(f"Netron is serving {file} at {viewer.url} (Ctrl-C to stop)", soft_wrap=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
