"""PyTorch module -> LiteRT (TFLite) flatbuffer, with litert-torch (static shapes)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ferry._io import native_output_silenced
from ferry.errors import UnsupportedModelError, UserError, first_line
from ferry.specs import InputSpec

if TYPE_CHECKING:
    from torch import nn


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """litert-torch prints a progress tree and torchao logs missing CUDA kernels on import."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            native_output_silenced(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def tflite_from_module(module: nn.Module, specs: Sequence[InputSpec], *, seed: int = 0) -> bytes:
    """The module as a ``.tflite`` flatbuffer (static shapes: the specs' example sizes).

    Raises:
        UserError: when litert-torch cannot convert the model, with its reason.
    """
    if not specs:
        raise UserError("LiteRT needs input specs to convert the model; give --input")
    import torch

    rng = np.random.default_rng(seed)
    args = tuple(torch.from_numpy(np.ascontiguousarray(s.sample(rng))) for s in specs)
    with quiet():
        import litert_torch

        try:
            with torch.no_grad():
                edge = litert_torch.convert(module.eval(), args)
            with tempfile.TemporaryDirectory(prefix="ferry-litert-") as tmp:
                path = Path(tmp) / "model.tflite"
                edge.export(os.fspath(path))
                return path.read_bytes()
        except Exception as exc:  # torch.export and the MLIR converter raise many types
            raise UnsupportedModelError(f"LiteRT cannot convert the model: {first_line(exc)}") from exc
