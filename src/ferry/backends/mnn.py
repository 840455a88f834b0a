"""MNN backend: the ONNX file converted to Alibaba's ``.mnn`` format and run by MNN's CPU runtime
(the engine of Taobao's and many Android apps), with dynamic shapes through its Module API.

The converter runs in a child process through MNN's ``_tools`` extension only: importing
``MNN.tools`` (what the ``mnnconvert`` command does) sends telemetry and pip-installs a logging SDK.
MNN's Winograd convolutions are limited (``WINOGRAD_MEMORY_LEVEL`` 0): with the default candidate
set, 3x3 convolutions differ from fp32 by up to 1e-3 on [0, 1) inputs; limited, by 2e-6.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ferry._io import native_output_silenced
from ferry.backends.base import Backend, Session
from ferry.convert.mnn import mnn_from_onnx
from ferry.errors import UnsupportedModelError, UserError
from ferry.onnx_file import graph_io
from ferry.registry import installed_version

#: MNN's Interpreter::HintMode::WINOGRAD_MEMORY_LEVEL and the value that keeps fp32 results.
WINOGRAD_MEMORY_LEVEL = 3
WINOGRAD_LIMITED = 0


class MnnSession(Session):
    backend = "mnn"

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 0) -> None:
        super().__init__()
        import onnx

        tmp = tempfile.TemporaryDirectory(prefix="ferry-mnn-")
        with tmp:
            mnn_path = Path(tmp.name) / "model.mnn"
            mnn_from_onnx(path, mnn_path)  # first: it names what is wrong with a bad file
            self._load(onnx.load(os.fspath(path), load_external_data=False), mnn_path, threads)

    def _load(self, proto: Any, mnn_path: Path, threads: int) -> None:
        self.inputs, self.outputs = graph_io(proto)
        self.mnn_bytes = mnn_path.stat().st_size
        with native_output_silenced():
            import MNN.nn as mnn_nn

            config = {"backend": "CPU", "precision": "high", "numThread": threads or os.cpu_count() or 1}
            self._runtime = mnn_nn.create_runtime_manager((config,))
            self._runtime.set_hint(WINOGRAD_MEMORY_LEVEL, WINOGRAD_LIMITED)
            self._net = mnn_nn.load_module_from_file(
                os.fspath(mnn_path),
                [i.name for i in self.inputs],
                [o.name for o in self.outputs],
                runtime_manager=self._runtime,
            )
        if self._net is None:
            raise UnsupportedModelError("MNN cannot load the converted model")
        self.settings = {
            "precision": "fp32",
            "winograd": "limited (WINOGRAD_MEMORY_LEVEL 0)",
            "threads": config["numThread"],
            "mnn_bytes": self.mnn_bytes,
        }
        self.artifact = ("model.mnn", self.mnn_bytes)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import MNN.expr as F

        args = []
        for info in self.inputs:
            arr = np.ascontiguousarray(feeds[info.name])
            if arr.dtype == np.uint8:
                args.append(F.const(arr, list(arr.shape), F.NCHW, F.uint8))
            elif arr.dtype.kind in "iub":
                args.append(F.const(arr.astype(np.int32), list(arr.shape), F.NCHW, F.int))  # MNN's ints are int32
            else:
                args.append(F.const(arr.astype(np.float32), list(arr.shape), F.NCHW, F.float))
        try:
            values = self._net.forward(args)
        except Exception as exc:  # MNN raises plain exceptions with its status text
            raise UserError(f"MNN failed to run the model: {' '.join(str(exc).split())[:300]}") from exc
        out = {}
        for info, v in zip(self.outputs, values, strict=True):
            if v.data_format == F.NC4HW4:
                v = F.convert(v, F.NCHW)
            out[info.name] = np.array(v.read(), copy=True).reshape(v.shape)
        return out


class MnnBackend(Backend):
    """MNN's CPU runtime (fp32, Winograd limited), from the ONNX file."""

    name = "mnn"
    artifact = "onnx"
    extra = "mnn"

    def version(self) -> str | None:
        return installed_version("MNN", "mnn")

    def load(self, artifact: Any, **options: Any) -> MnnSession:
        self.require()
        return MnnSession(artifact, threads=int(options.get("threads") or 0))
