"""PyTorch eager backend: the reference every other runtime is compared with.

torch is imported when a session is made, not with this module: the registry of runtimes is read
by commands that never run PyTorch (``ferry upscale`` of a cached export).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.backends.base import Backend, Session, TensorInfo, is_torch_module
from ferry.errors import UserError
from ferry.registry import installed_version

if TYPE_CHECKING:
    import torch
    from torch import nn


def flatten_outputs(value: Any, prefix: str = "output") -> list[tuple[str, torch.Tensor]]:
    """Flatten a forward() result (tensor, tuple, list, dict, nested) into named tensors.

    A single tensor is ``output``; sequences give ``output_0``, ``output_1``...; dict keys are
    used as names (joined with ``_`` when nested).
    """
    import torch

    if isinstance(value, torch.Tensor):
        return [(prefix, value)]
    if isinstance(value, dict):
        items: list[tuple[str, torch.Tensor]] = []
        for key, sub in value.items():
            name = str(key) if prefix == "output" else f"{prefix}_{key}"
            items += flatten_outputs(sub, name)
        return items
    if isinstance(value, (tuple, list)):
        items = []
        for i, sub in enumerate(value):
            items += flatten_outputs(sub, f"{prefix}_{i}")
        return items
    raise UserError(f"forward() returned {type(value).__name__}; ferry handles tensors, tuples, lists and dicts")


class TorchSession(Session):
    backend = "torch"

    def __init__(
        self, module: nn.Module, inputs: Sequence[TensorInfo], output_names: Sequence[str], threads: int = 0
    ) -> None:
        import torch

        super().__init__()
        self.module = module.eval()
        self.inputs = tuple(inputs)
        self.output_names = list(output_names)
        self.outputs = tuple(TensorInfo(n, "", ()) for n in output_names)
        self.threads = threads
        self.settings = {"mode": "eager", "threads": threads or torch.get_num_threads()}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in self.inputs]
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)  # torch's thread count is process-wide: set and restore
        try:
            with torch.inference_mode():
                result = self.module(*args)
        finally:
            if self.threads:
                torch.set_num_threads(before)
        flat = flatten_outputs(result)
        if self.output_names and len(flat) != len(self.output_names):
            raise UserError(
                f"the PyTorch model returned {len(flat)} output(s) but the export has {len(self.output_names)}"
            )
        names = self.output_names or [n for n, _ in flat]
        return {n: t.detach().cpu().numpy() for n, (_, t) in zip(names, flat, strict=True)}


class TorchBackend(Backend):
    name = "torch"
    artifact = "torch"
    extra = "core"

    def version(self) -> str | None:
        return installed_version("torch", "torch")

    def load(self, artifact: Any, **options: Any) -> TorchSession:
        if not is_torch_module(artifact):
            raise UserError("the torch backend runs a PyTorch model, not a file")
        return TorchSession(
            artifact, options.get("inputs", ()), options.get("outputs", ()), threads=int(options.get("threads", 0))
        )
