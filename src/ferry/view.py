"""Open an ONNX model in Netron, served on 127.0.0.1 only."""

from __future__ import annotations

import os
from pathlib import Path

from ferry import onnx_file
from ferry.errors import MissingDependencyError


def view(path: str | os.PathLike[str], *, port: int = 8080, browse: bool = True) -> tuple[str, int]:
    """Serve ``path`` with Netron on ``127.0.0.1:port`` and return the address.

    The server runs in a background thread; call :func:`stop_view` (or end the process) to stop it.

    Example:
        >>> host, port = ferry.view("sr.onnx", browse=False)
        >>> f"http://{host}:{port}"
        'http://127.0.0.1:8080'
    """
    onnx_file.load(path, load_external_data=False)
    try:
        import netron
    except ImportError as exc:
        raise MissingDependencyError("netron is not installed: pip install netron") from exc
    address = netron.start(str(Path(path)), address=("127.0.0.1", port), browse=browse)
    return str(address[0]), int(address[1])


def stop_view(address: tuple[str, int]) -> None:
    """Stop a Netron server started by :func:`view`."""
    import netron

    netron.stop(address)
