"""onnx's ReferenceEvaluator: the ONNX specification in plain numpy, slow but independent."""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

import numpy as np
import onnx

from ferry.backends.base import Backend, Session
from ferry.errors import UserError
from ferry.onnx_file import graph_io


class ReferenceSession(Session):
    backend = "reference"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        from onnx.reference import ReferenceEvaluator

        proto = onnx.load(os.fspath(path))
        self.inputs, self.outputs = graph_io(proto)
        try:
            self._ev = ReferenceEvaluator(proto)
        except Exception as exc:  # the evaluator raises many types for unsupported models
            raise UserError(f"onnx's reference evaluator cannot load {path}: {type(exc).__name__}: {exc}") from exc
        self.settings = {"evaluator": "onnx.reference.ReferenceEvaluator", "precision": "fp32"}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._ev.run(None, feeds)
        return {o.name: np.asarray(v) for o, v in zip(self.outputs, values, strict=True)}


class ReferenceBackend(Backend):
    name = "reference"
    artifact = "onnx"
    extra = "core"
    # Plain numpy is ~50x slower than a runtime; one sample per shape checks the semantics.
    samples_per_shape = 1

    def version(self) -> str | None:
        try:
            return f"onnx {metadata.version('onnx')}"
        except metadata.PackageNotFoundError:
            return None

    def load(self, artifact: Any, **options: Any) -> ReferenceSession:
        return ReferenceSession(artifact)
