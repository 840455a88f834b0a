"""PyTorch module -> ncnn (``.param`` + ``.bin``), with pnnx (fp32 weights, dynamic H/W)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferry._io import native_output_silenced
from ferry.errors import UnsupportedModelError, UserError, first_line
from ferry.specs import InputSpec

if TYPE_CHECKING:
    from torch import nn


@dataclass
class NcnnModel:
    """An ncnn network: its ``.param`` text and ``.bin`` weights."""

    param: str
    weights: bytes


def unsupported_inputs(specs: Sequence[InputSpec]) -> str | None:
    """Why ferry's ncnn adapter cannot feed these inputs (it runs N x C x H x W float32), or ``None``."""
    for s in specs:
        if len(s.dims) != 4 or s.dtype != "float32":
            return (
                f"ncnn cannot take the model: ferry's ncnn adapter runs N x C x H x W float32 inputs, and"
                f" {s.name or 'an input'} is {s.dtype}[{','.join(map(str, s.shape))}]"
            )
    return None


def ncnn_from_module(module: nn.Module, specs: Sequence[InputSpec], *, seed: int = 0) -> NcnnModel:
    """Convert the module with pnnx (fp32 weights; a second example shape keeps H and W dynamic).

    Raises:
        UserError: inputs that are not N x C x H x W float32, or a model pnnx cannot convert.
    """
    if not specs:
        raise UserError("ncnn needs input specs to convert the model; give --input")
    reason = unsupported_inputs(specs)
    if reason is not None:
        raise UnsupportedModelError(reason)
    import pnnx
    import torch

    rng = np.random.default_rng(seed)
    first = tuple(torch.from_numpy(s.with_sizes({d.name: 1 for d in s.dims[:1] if d.name}).sample(rng)) for s in specs)
    grown = [
        s.with_sizes({d.name: d.size + 8 for d in s.dims[2:] if d.name} | {d.name: 1 for d in s.dims[:1] if d.name})
        for s in specs
    ]
    second = tuple(torch.from_numpy(s.sample(rng)) for s in grown)
    dynamic = any(d.name for s in specs for d in s.dims[2:])
    with tempfile.TemporaryDirectory(prefix="ferry-ncnn-") as tmp:
        pt = Path(tmp) / "model.pt"
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                warnings.catch_warnings(),
                native_output_silenced(),
                torch.no_grad(),
            ):
                warnings.simplefilter("ignore")
                pnnx.export(module.eval(), os.fspath(pt), first, second if dynamic else None, fp16=False)
            param, weights = Path(tmp) / "model.ncnn.param", Path(tmp) / "model.ncnn.bin"
            if not param.is_file():
                raise UnsupportedModelError("ncnn cannot take the model: pnnx wrote no ncnn model")
            return NcnnModel(param.read_text(), weights.read_bytes())
        except UserError:
            raise
        except Exception as exc:  # TorchScript tracing and pnnx raise many types
            raise UnsupportedModelError(f"ncnn cannot take the model: {first_line(exc)}") from exc
