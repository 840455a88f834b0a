"""ferry works offline: its commands make no connection to another machine."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import NETWORK_ATTEMPTS


def test_the_guard_refuses_other_machines_and_records_them() -> None:
    before = len(NETWORK_ATTEMPTS)
    with socket.socket() as s, pytest.raises(OSError, match="offline"):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    assert len(NETWORK_ATTEMPTS) == before + 1
    del NETWORK_ATTEMPTS[before:]


def test_the_pipeline_attempts_no_connection(tmp_path: Path, cli: Any, tiny: Any) -> None:
    before = len(NETWORK_ATTEMPTS)
    model = tmp_path / "t.onnx"
    photo = tmp_path / "p.png"
    Image.new("RGB", (40, 30), (120, 80, 40)).save(photo)
    steps = [
        ("export", tiny("TinyConv"), "-o", model, "--input", "batch=1,3,8,8"),
        ("check", model),
        ("inspect", model),
        ("verify", tiny("TinyConv"), model, "--backends", "onnxruntime,openvino"),
        ("package", model, "--target", "onnx", "-o", tmp_path / "pkg"),
        ("upscale", photo, "-o", tmp_path / "up.png", "--backend", "onnxruntime"),
        ("zoo", "info", "superres"),
    ]
    for step in steps:
        res = cli(*step)
        assert res.code == 0, (step, res.err)
    assert NETWORK_ATTEMPTS[before:] == []
