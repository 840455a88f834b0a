"""OpenVINO backend (CPU). ``openvino`` forces f32 inference for parity; ``openvino-default`` keeps
OpenVINO's default precision (bf16 on CPUs with AMX/AVX-512 BF16) and is judged with bf16 tolerances.

Inputs and outputs are named after the ONNX graph's, by position: OpenVINO merges the names of a
tensor that passes through an Identity (or is also an intermediate), and a port's "any name" can
then be the intermediate's (``/encoder/final_layer_norm/Mul_output_0`` for T5's
``last_hidden_state``). Its ONNX frontend keeps the graph's order of inputs and outputs.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo
from ferry.errors import UserError
from ferry.onnx_file import graph_io
from ferry.registry import installed_version


def _dtype(element_type: Any) -> str:
    name = str(element_type.to_dtype())
    return "bool" if name == "bool_" else name


def _port_names(ports: list[Any], declared: list[str] | None, what: str) -> list[str]:
    """Names for OpenVINO's ports: the ONNX graph's, by position (see the module docstring)."""
    if declared is None:  # an OpenVINO IR file: its own names
        return [p.get_any_name() for p in ports]
    if len(declared) != len(ports):
        raise UserError(
            f"OpenVINO's model has {len(ports)} {what}(s), the ONNX graph {len(declared)} ({', '.join(declared)})"
        )
    return declared


def _graph_names(path: str | os.PathLike[str]) -> tuple[list[str], list[str]] | None:
    """The ONNX graph's input and output names, in order (``None`` for a file that is not ONNX)."""
    if not os.fspath(path).endswith(".onnx"):
        return None
    import onnx

    ins, outs = graph_io(onnx.load(os.fspath(path), load_external_data=False))
    return [i.name for i in ins], [o.name for o in outs]


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
            raise UserError(f"OpenVINO cannot load {path}: {_essence(exc)}") from exc
        declared = _graph_names(path)
        ins, self._outputs = list(self._compiled.inputs), list(self._compiled.outputs)
        in_names = _port_names(ins, declared[0] if declared else None, "input")
        out_names = _port_names(self._outputs, declared[1] if declared else None, "output")
        self.inputs = tuple(
            TensorInfo(
                name,
                _dtype(p.get_element_type()),
                tuple(d.get_length() if d.is_static else None for d in p.get_partial_shape()),
            )
            for name, p in zip(in_names, ins, strict=True)
        )
        self.outputs = tuple(
            TensorInfo(name, _dtype(p.get_element_type()), ()) for name, p in zip(out_names, self._outputs, strict=True)
        )
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
            # by port index: a port's own name can differ from the graph's
            result = self._request.infer({k: np.ascontiguousarray(feeds[i.name]) for k, i in enumerate(self.inputs)})
        except RuntimeError as exc:
            raise UserError(f"OpenVINO failed to run the model: {_essence(exc)}") from exc
        return {info.name: np.array(result[port]) for info, port in zip(self.outputs, self._outputs, strict=True)}


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


def _essence(exc: BaseException, limit: int = 500) -> str:
    """OpenVINO's message on one line without the C++ source locations it is wrapped in
    ("Exception from src/...cpp:84:", "Check 'false' failed at src/...cpp:151:")."""
    msg = " ".join(str(exc).split())
    msg = re.sub(r"(Exception from|Check '[^']*' failed at) \S+?:\d+:\s*", "", msg)
    return msg[:limit]
