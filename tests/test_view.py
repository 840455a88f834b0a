from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from ferry.errors import UserError
from ferry.view import stop_view, view


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_netron_serves_the_model_on_loopback(superres_onnx: Path) -> None:
    address = view(superres_onnx, port=_free_port(), browse=False)
    try:
        assert address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/", timeout=10) as resp:
            assert resp.status == 200
            assert b"netron" in resp.read().lower()
    finally:
        stop_view(address)


def test_view_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        view(tmp_path / "none.onnx", browse=False)
