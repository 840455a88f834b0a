"""LiteRT (formerly TensorFlow Lite) backend: the PyTorch module converted by litert-torch to a
``.tflite`` flatbuffer and run by LiteRT's interpreter with its XNNPACK delegate, as Android and
microcontroller apps run it.

Like ExecuTorch it starts from the PyTorch module. The converted program has static shapes: it
runs at the example shape it was converted at, and a verify run lists the other shapes as not run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo, is_torch_module
from ferry.convert.litert import quiet, tflite_from_module
from ferry.errors import UnsupportedModelError, UserError
from ferry.registry import installed_version
from ferry.specs import InputSpec


class LiteRTSession(Session):
    backend = "litert"

    def __init__(self, flatbuffer: bytes, output_names: Sequence[str] = (), *, threads: int = 0) -> None:
        super().__init__()
        with quiet():
            from ai_edge_litert.interpreter import Interpreter

            try:
                self._interp = Interpreter(model_content=flatbuffer, num_threads=threads or None)
                self._interp.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise UnsupportedModelError(
                    f"LiteRT cannot load the model: {' '.join(str(exc).split())[:300]}"
                ) from exc
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
        self.artifact = ("model.tflite", len(flatbuffer))

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

    def version(self) -> str | None:
        if installed_version("litert_torch", "litert-torch") is None:
            return None
        return installed_version("ai_edge_litert", "ai-edge-litert")

    def load(self, artifact: Any, **options: Any) -> LiteRTSession:
        self.require()
        specs: Sequence[InputSpec] = options.get("inputs", ())
        outputs: Sequence[str] = options.get("outputs", ())
        threads = int(options.get("threads") or 0)
        if is_torch_module(artifact):
            session = LiteRTSession(tflite_from_module(artifact, specs), outputs, threads=threads)
        elif isinstance(artifact, (str, os.PathLike)) and str(artifact).endswith(".tflite"):
            session = LiteRTSession(Path(artifact).read_bytes(), outputs, threads=threads)
        else:
            raise UserError("the litert backend takes a PyTorch module or a .tflite file")
        session.adopt_specs(specs)
        return session
