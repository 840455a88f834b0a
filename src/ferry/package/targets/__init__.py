"""Package targets: one module per deployment target, registered in :data:`TARGETS`.

Adding a target is one module (a ``build`` function that writes the runtime's artifact and a
README into the package folder, and its :class:`Target` record) and one line in
``_build_registry``. :func:`ferry.package` does the rest (export, manifest, atomic folder).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ferry.package.targets.base import BuildContext, Target
from ferry.registry import Registry


def _build_registry() -> Registry[Target]:
    from ferry.package.targets import executorch, litert, mnn, ncnn, onnx, openvino, ort_mobile, triton, web

    reg: Registry[Target] = Registry("target")
    for module in (onnx, ort_mobile, openvino, executorch, litert, mnn, ncnn, web, triton):
        reg.register(module.TARGET)
    return reg


#: The registered names, known without importing any converter (``--help`` lists them); a test
#: holds them equal to the registry's.
NAMES = ("executorch", "litert", "mnn", "ncnn", "onnx", "openvino", "ort-mobile", "web", "triton")


@functools.cache
def _registry() -> Registry[Target]:
    return _build_registry()


if TYPE_CHECKING:
    TARGETS: Registry[Target]


def __getattr__(name: str) -> Registry[Target]:
    # Built on first use: the target modules are imported then, not with ferry.package.targets.
    if name == "TARGETS":
        return _registry()
    raise AttributeError(f"module 'ferry.package.targets' has no attribute {name!r}")


__all__ = ["NAMES", "TARGETS", "BuildContext", "Target"]
