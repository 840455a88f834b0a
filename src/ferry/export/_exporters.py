"""The two exporters, and the check that the file has the dynamic dims that were asked for.

torch.export specializes a dim whose example size is 0 or 1 (and, through torch.onnx's retry
with the "suggested fixes", any dim the model's code pins to one value) without an error: the
file then has a fixed size where a dynamic dim was requested. Each export is therefore checked
against the file it produced; a dim that came out static is exported again from a size-2 example,
as torch.export's documentation recommends, and refused with the guard that pinned it if it
stays static.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import torch
from torch import nn

from ferry import onnx_file
from ferry.export._capture import Capture, Specialized, reason
from ferry.samples import random_inputs
from ferry.specs import InputSpec

if TYPE_CHECKING:
    from ferry.export import ExportConfig

#: the example size a dynamic dim of size 0 or 1 is traced with instead
TRACE_SIZE = 2


def example_inputs(specs: Sequence[InputSpec], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Deterministic example tensors for the given specs (used to trace the model)."""
    return tuple(torch.from_numpy(a) for a in random_inputs(specs, seed).values())


@dataclass(frozen=True)
class StaticDim:
    """A dim asked to be dynamic that the file has with a fixed size."""

    input: str
    position: int
    axis: int
    name: str
    size: int


def static_dims(proto: onnx.ModelProto, specs: Sequence[InputSpec]) -> list[StaticDim]:
    """The requested dynamic dims that the file's graph inputs have with a fixed size."""
    graph = {info.name: info for info in onnx_file.graph_io(proto)[0]}
    found = []
    for position, spec in enumerate(specs):
        info = graph.get(spec.name)
        if info is None:
            continue
        for axis, name in spec.dynamic_axes.items():
            size = info.shape[axis] if axis < len(info.shape) else None
            if isinstance(size, int):
                found.append(StaticDim(spec.name, position, axis, name, size))
    return found


def dynamic_shapes_for(module: nn.Module, dynamic: list[dict[int, Any] | None]) -> tuple[Any, ...]:
    """Dynamic shapes laid out as torch.export binds the arguments: those past ``forward``'s
    named parameters go together under its ``*args``."""
    params = inspect.signature(module.forward).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return tuple(dynamic)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = sum(p.kind in kinds for p in params)
    return (*dynamic[:named], tuple(dynamic[named:]))


def dynamo_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
) -> onnx.ModelProto:
    from torch.export import Dim

    dims: dict[str, Any] = {}
    dynamic: list[dict[int, Any] | None] = []
    for spec in specs:
        axes = {}
        for axis, name in spec.dynamic_axes.items():
            axes[axis] = dims.setdefault(name, Dim(name, min=1))
        dynamic.append(axes or None)
    program = torch.onnx.export(
        module,
        args,
        dynamo=True,
        input_names=[s.name for s in specs],
        output_names=list(outputs),
        opset_version=cfg.opset,
        dynamic_shapes=dynamic_shapes_for(module, dynamic) if any(dynamic) else None,
        optimize=cfg.constant_folding,
        verbose=cfg.verbose or False,
    )
    if program is None:  # only the TorchScript path returns None
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def torchscript_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
) -> onnx.ModelProto:
    dynamic_axes = {s.name: dict(s.dynamic_axes) for s in specs if s.dynamic_axes}
    with tempfile.TemporaryDirectory(prefix="ferry-export-") as work:
        path = Path(work) / "torchscript.onnx"
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=[s.name for s in specs],
            output_names=list(outputs),
            opset_version=cfg.opset,
            dynamic_axes=dynamic_axes or None,
            do_constant_folding=cfg.constant_folding,
            verbose=cfg.verbose,
        )
        return onnx.load(str(path))


_EXPORTERS = {"dynamo": dynamo_export, "torchscript": torchscript_export}


@dataclass
class Exported:
    """What the exporters produced: the model, who made it, and what happened on the way."""

    proto: onnx.ModelProto
    exporter: str
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _traced(specs: Sequence[InputSpec], names: set[str]) -> tuple[InputSpec, ...]:
    return tuple(s.with_sizes(dict.fromkeys(names, TRACE_SIZE)) for s in specs)


def _tiny_dims(specs: Sequence[InputSpec]) -> set[str]:
    """Dynamic dims whose example size torch.export specializes (0 and 1)."""
    return {d.name for s in specs for d in s.dims if d.name and d.size <= 1}


_ADVICE = "; export it static (drop the name) or make the model's code independent of that size"


def _static(found: list[StaticDim], cap: Capture, exporter: str) -> str:
    """Which requested dynamic dim the file has static, and the guard that pinned it."""
    first = found[0]
    what = f"dim {first.name!r} (axis {first.axis} of {first.input}) came out static, size {first.size}"
    guard = cap.why_static(first.input, first.position, first.axis) if exporter == "dynamo" else None
    if guard is not None:
        what += f": the model's code pinned it ({guard.expr})" + (f" at {guard.frame}" if guard.frame else "")
    return what + (f" (and {len(found) - 1} more dim(s))" if len(found) > 1 else "")


def _attempt(
    name: str,
    module: nn.Module,
    specs: Sequence[InputSpec],
    traced: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
    cap: Capture,
) -> tuple[onnx.ModelProto, list[StaticDim]]:
    cap.begin(f"{name} exporter, example {[str(s) for s in traced]}")
    proto = _EXPORTERS[name](module, example_inputs(traced), specs, outputs, cfg)
    return proto, static_dims(proto, specs)


def export_honestly(
    name: str, module: nn.Module, specs: Sequence[InputSpec], outputs: Sequence[str], cfg: ExportConfig, cap: Capture
) -> tuple[onnx.ModelProto, list[str]]:
    """Export with one exporter; the file has every requested dynamic dim, or this raises.

    A failure or a specialized dim with a dynamic dim of example size 0 or 1 is retried once,
    traced with size 2 for those dims (dynamo only: TorchScript names the axes it is told to).

    Raises:
        Specialized: a requested dynamic dim is static in the file.
    """
    tiny = _tiny_dims(specs) if name == "dynamo" else set()
    try:
        proto, found = _attempt(name, module, specs, specs, outputs, cfg, cap)
    except Exception as exc:  # exporters raise many unrelated types; retried or re-raised
        if not tiny:
            raise
        cap.failed(f"{name} exporter", exc)
        first_error: Exception | None = exc
        why = f"failed ({reason(exc)})"
    else:
        if not found:
            return proto, []
        tiny &= {f.name for f in found}
        if not tiny:
            raise Specialized(_static(found, cap, name) + _ADVICE)
        first_error, why = None, f"made it static: {_static(found, cap, name)}"
    try:
        proto, found = _attempt(name, module, specs, _traced(specs, tiny), outputs, cfg, cap)
    except Exception:
        if first_error is not None:
            raise first_error from None
        raise
    if found:
        raise Specialized(_static(found, cap, name) + _ADVICE)
    dims = ", ".join(f"{d}={TRACE_SIZE}" for d in sorted(tiny))
    return proto, [f"traced with {dims}: at example size 1, torch.export {why}"]


def run_exporters(
    module: nn.Module, specs: Sequence[InputSpec], outputs: Sequence[str], cfg: ExportConfig, cap: Capture
) -> Exported:
    """Try the exporters in order (``auto``: dynamo, then TorchScript); the first whose file has
    every requested dynamic dim wins. A dim the model's code pins stops the search.

    Raises:
        ExportFailed: every exporter failed; its ``failures`` holds each one's reason.
    """
    order = ["dynamo", "torchscript"] if cfg.exporter == "auto" else [cfg.exporter]
    failures: dict[str, str] = {}
    for name in order:
        try:
            proto, notes = export_honestly(name, module, specs, outputs, cfg, cap)
        except Specialized as exc:
            # The model's code pins the dim: a traced file would name it dynamic and be wrong
            # at every other size, so there is nothing to fall back to.
            cap.failed(f"{name} exporter", exc)
            failures[name] = str(exc)
            raise ExportFailed(failures, specialized=True) from None
        except Exception as exc:  # exporters raise many unrelated types; each is reported
            cap.failed(f"{name} exporter", exc)
            failures[name] = reason(exc)
            continue
        return Exported(proto, name, failures, notes)
    raise ExportFailed(failures)


class ExportFailed(Exception):
    """No exporter gave a file with every requested dynamic dim.

    Attributes:
        failures: each exporter's reason, in one line.
        specialized: the model's code pins a requested dynamic dim to one size (no exporter can
            make it dynamic; the others were not tried).
    """

    def __init__(self, failures: dict[str, str], *, specialized: bool = False) -> None:
        super().__init__("; ".join(f"{k} exporter: {v}" for k, v in failures.items()))
        self.failures = failures
        self.specialized = specialized
