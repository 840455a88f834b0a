"""onnxslim: constant folding, dead-code and shape simplification on the ONNX graph."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from ferry.errors import MissingDependencyError
from ferry.optimize.passes import PassResult, running


def simplify(proto: onnx.ModelProto, dst: Path) -> PassResult:
    """Write the simplified model to ``dst``."""
    try:
        import onnxslim
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        raise MissingDependencyError("onnxslim is not installed: pip install onnxslim") from exc
    with running("onnxslim", "try --no-simplify"):
        slim = onnxslim.slim(proto)
    onnx.save(slim, os.fspath(dst))
    return PassResult(dst, "onnxslim")
