"""Package targets: one module per deployment target, registered in :data:`TARGETS`.

Adding a target is one module (a ``build`` function that writes the runtime's artifact and a
README into the package folder, and its :class:`Target` record) and one line in
``_build_registry``. :func:`ferry.package` does the rest (export, manifest, atomic folder).
"""

from __future__ import annotations

from ferry.registry import Registry
from ferry.targets.base import BuildContext, Target


def _build_registry() -> Registry[Target]:
    from ferry.targets import executorch, litert, mnn, ncnn, onnx, openvino, ort_mobile, web

    reg: Registry[Target] = Registry("target")
    for module in (onnx, ort_mobile, openvino, executorch, litert, mnn, ncnn, web):
        reg.register(module.TARGET)
    return reg


TARGETS = _build_registry()

__all__ = ["TARGETS", "BuildContext", "Target"]
