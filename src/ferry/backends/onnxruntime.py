"""ONNX Runtime backend: CPU provider, CUDA when the installed build has it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo
from ferry.errors import UnsupportedModelError, UserError
from ferry.registry import installed_version

# ONNX Runtime type strings -> numpy dtype names.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _dim(d: object) -> int | str | None:
    return d if isinstance(d, (int, str)) else None


class OnnxRuntimeSession(Session):
    backend = "onnxruntime"

    def __init__(
        self, path: str | os.PathLike[str], *, optimize: bool = True, threads: int = 0, spinning: bool = True
    ) -> None:
        super().__init__()
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        if not spinning:
            # Idle workers busy-wait for the next run by default, stealing the CPU from whatever
            # runs next in the same process.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self._sess = ort.InferenceSession(os.fspath(path), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            msg = " ".join(str(exc).split())
            raise UserError(f"ONNX Runtime cannot load {path}: {msg[:500]}") from exc
        self.inputs = tuple(
            TensorInfo(i.name, _ORT_TYPES.get(i.type, i.type), tuple(_dim(d) for d in i.shape))
            for i in self._sess.get_inputs()
        )
        self.outputs = tuple(
            TensorInfo(o.name, _ORT_TYPES.get(o.type, o.type), tuple(_dim(d) for d in o.shape))
            for o in self._sess.get_outputs()
        )
        self.settings = {
            "precision": "fp32",
            "providers": self._sess.get_providers(),
            "graph_optimization": "all" if optimize else "disabled",
            "threads": threads or "default",
            "spinning": spinning,
        }

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self._sess.run(None, feeds)
        except Exception as exc:  # onnxruntime's Fail/InvalidArgument types are not importable
            msg = " ".join(str(exc).split())
            raise UserError(f"ONNX Runtime failed to run the model: {msg[:500]}") from exc
        return {o.name: np.asarray(v) for o, v in zip(self.outputs, values, strict=True)}


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with all graph optimizations (``onnxruntime``) or none (``onnxruntime-noopt``).

    Comparing the two separates a bug in an optimizer's fusion from a wrong export.
    """

    artifact = "onnx"
    extra = "core"

    def __init__(self, *, optimize: bool = True) -> None:
        self.optimize = optimize
        self.name = "onnxruntime" if optimize else "onnxruntime-noopt"

    def version(self) -> str | None:
        return installed_version("onnxruntime", "onnxruntime")

    def timing_options(self) -> dict[str, Any]:
        return {"spinning": False}

    def load(self, artifact: Any, **options: Any) -> OnnxRuntimeSession:
        self.require()
        return OnnxRuntimeSession(artifact, **{"optimize": self.optimize, **options})


class OrtFormatBackend(OnnxRuntimeBackend):
    """The model converted to ONNX Runtime's mobile ORT format (what ``ferry package --target
    ort-mobile`` ships: optimizations fixed for ARM at conversion) and run from the ``.ort`` file."""

    def __init__(self) -> None:
        super().__init__(optimize=False)
        self.name = "ort-format"

    def load(self, artifact: Any, **options: Any) -> OnnxRuntimeSession:
        import tempfile
        from pathlib import Path

        from ferry.convert.ort import ort_from_onnx

        self.require()
        with tempfile.TemporaryDirectory(prefix="ferry-ort-format-") as tmp:
            ort_path, _ = ort_from_onnx(Path(artifact), Path(tmp))
            try:
                session = OnnxRuntimeSession(ort_path, optimize=False, **options)
            except UserError as exc:  # the runtime build cannot run what its own converter made
                raise UnsupportedModelError(str(exc)) from exc
            session.settings["ort_bytes"] = ort_path.stat().st_size
            session.artifact = ("model.ort", ort_path.stat().st_size)
        session.backend = self.name
        session.settings["format"] = "ORT (optimizations fixed at conversion, target_platform arm)"
        return session
