"""``ferry run``: an ONNX file once on a backend, with inputs from ``.npy``/``.npz`` files or generated from specs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ferry import onnx_file
from ferry._io import atomic_path
from ferry.backends import REGISTRY, Session
from ferry.errors import UserError
from ferry.samples import random_inputs
from ferry.specs import InputSpec


@dataclass
class RunResult:
    """Outputs of one run, with the backend that produced them."""

    outputs: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    seconds: float
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def summary(self) -> list[dict[str, Any]]:
        """Per-output name, shape, dtype and value statistics."""
        rows = []
        for name, arr in self.outputs.items():
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            rows.append(
                {
                    "name": name,
                    "shape": list(arr.shape),
                    "dtype": arr.dtype.name,
                    "min": float(finite.min()) if finite.size else None,
                    "max": float(finite.max()) if finite.size else None,
                    "mean": float(finite.mean()) if finite.size else None,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "seconds": self.seconds, "settings": self.settings, "outputs": self.summary()}


def open_session(path: str | os.PathLike[str], backend: str = "onnxruntime", **options: Any) -> Session:
    """Load an ONNX file on an ONNX-consuming backend."""
    onnx_file.load(path, load_external_data=False)
    b = REGISTRY.get(backend)
    if b.artifact != "onnx":
        raise UserError(f"backend {backend!r} cannot run an ONNX file; use one of: onnxruntime")
    b.require()
    return b.load(os.fspath(path), **options)


def run(
    path: str | os.PathLike[str],
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    specs: Sequence[InputSpec] | None = None,
    backend: str = "onnxruntime",
    seed: int = 0,
) -> RunResult:
    """Run an ONNX model once.

    Args:
        path: the ONNX file.
        inputs: named arrays; when omitted, random inputs are made from ``specs``, else from the
            specs ferry stored at export, else from the graph's static input shapes.
        specs: input specs for random inputs; names default to the graph's input names.
        backend: the runtime to use.
        seed: seed for random inputs.

    Example:
        >>> out = ferry.run("sr.onnx", {"input": np.zeros((1, 1, 64, 64), np.float32)})
        >>> out.outputs["output"].shape
        (1, 1, 192, 192)
    """
    session = open_session(path, backend)
    names = [i.name for i in session.inputs]
    if inputs is None:
        if specs:
            if len(specs) != len(names):
                raise UserError(f"the model has {len(names)} input(s) ({', '.join(names)}), got {len(specs)} specs")
            chosen = [s if s.name else s.with_name(n) for s, n in zip(specs, names, strict=True)]
        else:
            proto = onnx_file.load(path, load_external_data=False)
            chosen = list(onnx_file.stored_specs(proto) or onnx_file.graph_specs(proto))
            if not chosen:
                want = "; ".join(i.describe() for i in session.inputs)
                raise UserError(f"the model has dynamic inputs ({want}); give --input files or shapes")
        inputs = random_inputs(chosen, seed)
    result = session.run(inputs)
    return RunResult(
        outputs=result.outputs, inputs=dict(inputs), seconds=result.seconds, backend=backend, settings=session.settings
    )


def save_outputs(outputs: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write named arrays to an ``.npz`` file atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"output {path} must end in .npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **dict(outputs))  # type: ignore[arg-type]
    return path
