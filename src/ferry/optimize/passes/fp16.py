"""float16 weights and arithmetic (fp32 inputs and outputs kept by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from ferry.optimize.passes import PassResult, nodes_to_exclude, running

if TYPE_CHECKING:
    from ferry.optimize._results import OptimizeConfig


def to_fp16(src: Path, dst: Path, cfg: OptimizeConfig) -> PassResult:
    """Convert to float16 (nodes named in ``keep_float`` stay in float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = onnx.load(os.fspath(src))
    excluded = nodes_to_exclude(proto, [k for k in cfg.keep_float if k != "last"])
    with running("ONNX Runtime's float16 converter", "keep the model in float32, or name nodes to --keep-float"):
        converted = convert_float_to_float16(proto, keep_io_types=cfg.keep_io_types, node_block_list=excluded or None)
    onnx.save(converted, os.fspath(dst))
    return PassResult(dst, "fp16" + (" (fp32 I/O)" if cfg.keep_io_types else ""), excluded)
