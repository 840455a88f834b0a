"""Backend registry. Adding a runtime is one module and one entry in ``_build_registry``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ferry.backends.base import Backend, BackendInfo, RunOutput, Session, TensorInfo
from ferry.registry import Registry


class BackendRegistry(Registry[Backend]):
    """Name -> Backend, plus which of them are installed."""

    def __init__(self) -> None:
        super().__init__("backend")

    def installed(self) -> list[str]:
        return [b.name for b in self if b.available()]

    def resolve(self, names: list[str]) -> list[Backend]:
        """Expand ``all`` to every installed backend and check the others exist and are installed."""
        if names == ["all"]:
            return [b for b in self if b.available()]
        chosen = [self.get(n) for n in names]
        for b in chosen:
            b.require()
        return chosen


def _build_registry() -> BackendRegistry:
    from ferry.backends.executorch import ExecuTorchBackend
    from ferry.backends.litert import LiteRTBackend
    from ferry.backends.mnn import MnnBackend
    from ferry.backends.ncnn import NcnnBackend
    from ferry.backends.onnxruntime import OnnxRuntimeBackend, OrtFormatBackend
    from ferry.backends.openvino import OpenVinoBackend
    from ferry.backends.ort_web import OrtWebBackend
    from ferry.backends.reference import ReferenceBackend
    from ferry.backends.torch import TorchBackend

    reg = BackendRegistry()
    reg.register(TorchBackend())
    reg.register(OnnxRuntimeBackend(optimize=True))
    reg.register(OnnxRuntimeBackend(optimize=False))
    reg.register(OrtFormatBackend())
    reg.register(ReferenceBackend())
    reg.register(OpenVinoBackend(force_f32=True))
    reg.register(OpenVinoBackend(force_f32=False))
    reg.register(ExecuTorchBackend())
    reg.register(OrtWebBackend())
    reg.register(LiteRTBackend())
    reg.register(MnnBackend())
    reg.register(NcnnBackend())
    return reg


#: The registered names, known without importing any runtime (``--help`` texts list them); a
#: test holds them equal to the registry's.
NAMES = (
    "executorch",
    "litert",
    "mnn",
    "ncnn",
    "onnxruntime",
    "onnxruntime-noopt",
    "openvino",
    "openvino-default",
    "ort-format",
    "ort-web",
    "reference",
    "torch",
)


@functools.cache
def _registry() -> BackendRegistry:
    return _build_registry()


if TYPE_CHECKING:
    REGISTRY: BackendRegistry


def __getattr__(name: str) -> BackendRegistry:
    # The registry imports every backend module (and their runtimes' Python packages): built on
    # first use, not when ferry.backends is imported.
    if name == "REGISTRY":
        return _registry()
    raise AttributeError(f"module 'ferry.backends' has no attribute {name!r}")


def get_backend(name: str) -> Backend:
    """Look up a backend by name."""
    return _registry().get(name)


__all__ = ["NAMES", "REGISTRY", "Backend", "BackendInfo", "RunOutput", "Session", "TensorInfo", "get_backend"]
