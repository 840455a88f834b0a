"""Backend registry. Adding a runtime is one module and one entry in ``_build_registry``."""

from __future__ import annotations

from ferry.backends.base import Backend, BackendInfo, RunOutput, Session, TensorInfo
from ferry.errors import InternalError, UserError


class BackendRegistry:
    """Name -> Backend; duplicates are a bug, unknown names list the known ones."""

    def __init__(self) -> None:
        self._backends: dict[str, Backend] = {}

    def register(self, backend: Backend) -> None:
        if backend.name in self._backends:
            raise InternalError(f"backend {backend.name!r} is registered twice")
        self._backends[backend.name] = backend

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            raise UserError(f"unknown backend {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._backends)

    def installed(self) -> list[str]:
        return [n for n in self.names() if self._backends[n].available()]

    def resolve(self, names: list[str]) -> list[Backend]:
        """Expand ``all`` to every installed backend and check the others exist and are installed."""
        if names == ["all"]:
            return [self._backends[n] for n in self.installed()]
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
    from ferry.backends.reference import ReferenceBackend
    from ferry.backends.torch import TorchBackend
    from ferry.backends.web import OrtWebBackend

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


REGISTRY = _build_registry()


def get_backend(name: str) -> Backend:
    """Look up a backend by name."""
    return REGISTRY.get(name)


__all__ = ["REGISTRY", "Backend", "BackendInfo", "RunOutput", "Session", "TensorInfo", "get_backend"]
