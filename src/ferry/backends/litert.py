"""LiteRT (formerly TensorFlow Lite) backend: the PyTorch module converted by litert-torch to a
``.tflite`` flatbuffer and run by LiteRT's interpreter with its XNNPACK delegate, as Android and
microcontroller apps run it.

Like ExecuTorch it starts from the PyTorch module. The converted program has static shapes: it
runs at the example shape it was converted at, and a verify run lists the other shapes as not run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferry._io import native_output_silenced
from ferry.backends.base import Backend, Session, TensorInfo
from ferry.errors import UserError, first_line
from ferry.registry import installed_version
from ferry.specs import InputSpec


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
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


def convert(module: nn.Module, specs: Sequence[InputSpec], *, seed: int = 0) -> bytes:
    """The module as a ``.tflite`` flatbuffer (static shapes: the specs' example sizes).

    Raises:
        UserError: when litert-torch cannot convert the model, with its reason.
    """
    if not specs:
        raise UserError("LiteRT needs input specs to convert the model; give --input")
    rng = np.random.default_rng(seed)
    args = tuple(torch.from_numpy(np.ascontiguousarray(s.sample(rng))) for s in specs)
    with _quiet():
        import litert_torch

        try:
            with torch.no_grad():
                edge = litert_torch.convert(module.eval(), args)
            with tempfile.TemporaryDirectory(prefix="ferry-litert-") as tmp:
                path = Path(tmp) / "model.tflite"
                edge.export(os.fspath(path))
                return path.read_bytes()
        except Exception as exc:  # torch.export and the MLIR converter raise many types
            raise UserError(f"LiteRT cannot convert the model: {first_line(exc)}") from exc


class LiteRTSession(Session):
    backend = "litert"

    def __init__(self, flatbuffer: bytes, output_names: Sequence[str] = (), *, threads: int = 0) -> None:
        super().__init__()
        with _quiet():
            from ai_edge_litert.interpreter import Interpreter

            try:
                self._interp = Interpreter(model_content=flatbuffer, num_threads=threads or None)
                self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise UserError(f"LiteRT cannot load the model: {' '.join(str(exc).split())[:300]}") from exc
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.flatbuffer = flatbuffer
        names = list(output_names) or [d["name"] for d in self._out]
        if len(names) != len(self._out):
            raise UserError(f"the LiteRT model has {len(self._out)} output(s), expected {len(names)}")
        self._input_names = [str(d["name"]) for d in self._in]
        self.inputs = tuple(
            TensorInfo(n, np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"]))
            for n, d in zip(self._input_names, self._in, strict=True)
        )
        self.outputs = tuple(
            TensorInfo(n, np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"]))
            for n, d in zip(names, self._out, strict=True)
        )
        self.settings = {
            "precision": "fp32",
            "delegate": "XNNPACK (LiteRT's default CPU delegate)",
            "threads": threads or "default",
            "static_shapes": True,
            "tflite_bytes": len(flatbuffer),
        }

    def adopt_specs(self, specs: Sequence[InputSpec]) -> None:
        """Take the model's input names (litert-torch calls them args_0...) and dtypes: LiteRT
        computes int64 inputs in int32, so feeds are cast to what the interpreter holds."""
        if len(specs) == len(self.inputs):
            self.inputs = tuple(TensorInfo(s.name, s.dtype, i.shape) for s, i in zip(specs, self.inputs, strict=True))

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for info, detail in zip(self.inputs, self._in, strict=True):
            self._interp.set_tensor(detail["index"], np.ascontiguousarray(feeds[info.name], dtype=detail["dtype"]))
        try:
            self._interp.invoke()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"LiteRT failed to run the model: {' '.join(str(exc).split())[:300]}") from exc
        return {
            o.name: self._interp.get_tensor(d["index"]).copy() for o, d in zip(self.outputs, self._out, strict=True)
        }


class LiteRTBackend(Backend):
    """LiteRT with XNNPACK (fp32), from the PyTorch module (converted by litert-torch) or a ``.tflite``."""

    name = "litert"
    artifact = "module"
    extra = "litert"
    may_refuse = True

    def version(self) -> str | None:
        if installed_version("litert_torch", "litert-torch") is None:
            return None
        return installed_version("ai_edge_litert", "ai-edge-litert")

    def load(self, artifact: Any, **options: Any) -> LiteRTSession:
        self.require()
        specs: Sequence[InputSpec] = options.get("inputs", ())
        outputs: Sequence[str] = options.get("outputs", ())
        threads = int(options.get("threads") or 0)
        if isinstance(artifact, nn.Module):
            session = LiteRTSession(convert(artifact, specs), outputs, threads=threads)
        elif isinstance(artifact, (str, os.PathLike)) and str(artifact).endswith(".tflite"):
            session = LiteRTSession(Path(artifact).read_bytes(), outputs, threads=threads)
        else:
            raise UserError("the litert backend takes a PyTorch module or a .tflite file")
        session.adopt_specs(specs)
        return session
