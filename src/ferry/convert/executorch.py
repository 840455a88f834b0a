"""PyTorch module -> ExecuTorch program (``.pte``), lowered to the XNNPACK delegate."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.errors import UnsupportedModelError, UserError, first_line
from ferry.specs import InputSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

# Factor between a dynamic dim's example size and its upper bound in the lowered program.
DYNAMIC_BOUND = 4


def _dynamic_shapes(specs: Sequence[InputSpec]) -> tuple[dict[int, Any], ...] | None:
    """``Dim.AUTO`` with bounds for every named dim: export keeps it dynamic where the model
    allows, and ExecuTorch plans memory for the upper bound."""
    from torch.export import Dim

    shapes: list[dict[int, Any]] = []
    for spec in specs:
        axes: dict[int, Any] = {}
        for axis, d in enumerate(spec.dims):
            if d.name is not None:
                low = 1 if axis == 0 else min(d.size, 8)
                axes[axis] = Dim.AUTO(min=low, max=max(DYNAMIC_BOUND * d.size, 8))
        shapes.append(axes)
    return tuple(shapes) if any(shapes) else None


def _example(spec: InputSpec, rng: np.random.Generator) -> torch.Tensor:
    # A dynamic dim traced at size 1 would be specialized to 1 (torch.export's 0/1 rule).
    sized = spec.with_sizes({d.name: 2 for d in spec.dims if d.name is not None and d.size == 1})
    import torch

    return torch.from_numpy(np.ascontiguousarray(sized.sample(rng)))


@dataclass
class Lowered:
    """A serialized ExecuTorch program and, per input, the axes that stayed dynamic in it."""

    program: bytes
    dynamic: list[set[int]]


def _export(module: nn.Module, specs: Sequence[InputSpec], args: tuple[torch.Tensor, ...]) -> Any:
    import torch

    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export's deprecation chatter is not the user's business
        return torch.export.export(module.eval(), args, dynamic_shapes=_dynamic_shapes(specs), strict=False)


@contextlib.contextmanager
def quiet_imports() -> Iterator[None]:
    """executorch pulls torchao, which logs missing CUDA kernels on every CPU-only import."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _dynamic_axes(exported: Any) -> list[set[int]]:
    """Axes whose size is symbolic in the exported program, per user input."""
    user_inputs = set(exported.graph_signature.user_inputs)
    axes: list[set[int]] = []
    for node in exported.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            val = node.meta.get("val")
            shape = getattr(val, "shape", ())
            axes.append({k for k, d in enumerate(shape) if not isinstance(d, int)})
    return axes


def pte_from_module(module: nn.Module, specs: Sequence[InputSpec], *, seed: int = 0) -> Lowered:
    """The module as an ExecuTorch program (XNNPACK delegate), serialized.

    ``torch.export`` may fix a dim the specs name as dynamic (an LSTM's sequence length); the
    result says which dims stayed dynamic, and a session refuses other sizes on the fixed ones.

    Raises:
        UserError: when ``torch.export`` or the lowering refuses the model, with the reason.
    """
    with quiet_imports():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

    if not specs:
        raise UserError("ExecuTorch needs input specs to export the model; give --input")
    try:
        exported = _export(module, specs, tuple(_example(s, np.random.default_rng(seed)) for s in specs))
        dynamic = _dynamic_axes(exported)
        declared = [{a for a, d in enumerate(s.dims) if d.name} for s in specs]
        if dynamic != declared:
            # Some dims were fixed, possibly at the stand-in size 2 used for size-1 dims: fix
            # them at the sizes the specs give instead.
            import torch

            args = tuple(torch.from_numpy(np.ascontiguousarray(s.sample(np.random.default_rng(seed)))) for s in specs)
            exported = _export(module, specs, args)
            dynamic = _dynamic_axes(exported)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as exc:  # torch.export and exir raise many types; the message names the op
        raise UnsupportedModelError(f"ExecuTorch cannot lower the model: {first_line(exc)}") from exc
    return Lowered(bytes(program.buffer), dynamic)


def delegated_ops(program: bytes) -> dict[str, int]:
    """How many nodes of the program run in the XNNPACK delegate vs ExecuTorch's portable ops."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    prog = deserialize_pte_binary(program)
    prog = getattr(prog, "program", prog)
    counts: dict[str, int] = {}
    for plan in prog.execution_plan:
        counts["delegate_calls"] = counts.get("delegate_calls", 0) + len(plan.delegates)
        for op in plan.operators:
            counts[op.name] = counts.get(op.name, 0) + 1
    return counts
