"""OpenVINO backend (CPU). ``openvino`` forces f32 inference for parity; ``openvino-default`` keeps
OpenVINO's default precision (bf16 on CPUs with AMX/AVX-512 BF16) and is judged with bf16 tolerances."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo
from ferry.errors import UserError
from ferry.registry import installed_version


def _dtype(element_type: Any) -> str:
    name = str(element_type.to_dtype())
    return "bool" if name == "bool_" else name


class OpenVinoSession(Session):
    backend = "openvino"

    def __init__(self, path: str | os.PathLike[str], *, force_f32: bool, threads: int = 0) -> None:
        super().__init__()
        import openvino as ov

        core = ov.Core()
        config: dict[str, Any] = {}
        if force_f32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            model = core.read_model(os.fspath(path))
            self._compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            msg = " ".join(str(exc).split())
            raise UserError(f"OpenVINO cannot load {path}: {msg[:500]}") from exc
        self.inputs = tuple(
            TensorInfo(
                p.get_any_name(),
                _dtype(p.get_element_type()),
                tuple(d.get_length() if d.is_static else None for d in p.get_partial_shape()),
            )
            for p in self._compiled.inputs
        )
        self._outputs = list(self._compiled.outputs)
        self.outputs = tuple(TensorInfo(p.get_any_name(), _dtype(p.get_element_type()), ()) for p in self._outputs)
        precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = "bf16" if "bf16" in precision.lower() or "bfloat16" in precision.lower() else "fp32"
        self.settings = {
            "device": "CPU",
            "inference_precision": precision,
            "precision": self.precision,
            "forced_f32": force_f32,
        }
        self._request = self._compiled.create_infer_request()

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            result = self._request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
        except RuntimeError as exc:
            msg = " ".join(str(exc).split())
            raise UserError(f"OpenVINO failed to run the model: {msg[:500]}") from exc
        return {port.get_any_name(): np.array(result[port]) for port in self._outputs}


class OpenVinoBackend(Backend):
    artifact = "onnx"
    extra = "openvino"

    def __init__(self, *, force_f32: bool) -> None:
        self.force_f32 = force_f32
        self.name = "openvino" if force_f32 else "openvino-default"
        # OpenVINO's default precision (bf16 here) is reported beside the f32 parity result.
        self.informational_in_all = not force_f32

    def version(self) -> str | None:
        return installed_version("openvino", "openvino")

    def load(self, artifact: Any, **options: Any) -> OpenVinoSession:
        self.require()
        return OpenVinoSession(artifact, force_f32=self.force_f32, **options)
