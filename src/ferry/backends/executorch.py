"""ExecuTorch backend: the PyTorch module lowered with ``torch.export`` to an XNNPACK-delegated
``.pte`` program and run by ExecuTorch's runtime, as a phone or a small board would run it.

Unlike the ONNX backends it starts from the PyTorch module, not from the ONNX file. Dynamic dims
get an upper bound (ExecuTorch plans memory for the largest shape): four times the example size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ferry._io import native_output_silenced
from ferry.backends.base import Backend, Session, TensorInfo, is_torch_module
from ferry.errors import UnsupportedModelError, UserError
from ferry.registry import installed_version
from ferry.specs import InputSpec


class ExecuTorchSession(Session):
    backend = "executorch"

    def __init__(
        self,
        program: bytes,
        specs: Sequence[InputSpec],
        output_names: Sequence[str],
        dynamic: Sequence[set[int]] | None = None,
    ) -> None:
        super().__init__()
        from ferry.convert.executorch import quiet_imports

        with quiet_imports():
            from executorch.runtime import Runtime

        try:
            with native_output_silenced():  # the runtime logs its CPU probe from C++
                self._method = Runtime.get().load_program(program).load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError with a status code
            raise UnsupportedModelError(f"ExecuTorch cannot load the program: {exc}") from exc
        self.program = program
        self.artifact = ("model.pte", len(program))
        axes = list(dynamic) if dynamic is not None else [{a for a, d in enumerate(s.dims) if d.name} for s in specs]
        self.inputs = tuple(
            TensorInfo(s.name, s.dtype, tuple(None if a in dyn else d.size for a, d in enumerate(s.dims)))
            for s, dyn in zip(specs, axes, strict=True)
        )
        self.output_names = list(output_names)
        self.outputs = tuple(TensorInfo(n, "", ()) for n in self.output_names)
        self.settings = {"delegate": "XnnpackBackend", "precision": "fp32", "program_bytes": len(program)}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])) for i in self.inputs]
        try:
            values = self._method.execute(args)
        except Exception as exc:  # e.g. a shape beyond the planned upper bound
            raise UserError(f"ExecuTorch failed to run the model: {' '.join(str(exc).split())[:300]}") from exc
        flat = [v for v in values if isinstance(v, torch.Tensor)]
        names = self.output_names or [f"output_{k}" for k in range(len(flat))]
        if len(names) != len(flat):
            raise UserError(f"the ExecuTorch program returned {len(flat)} output(s), expected {len(names)}")
        return {n: t.numpy() for n, t in zip(names, flat, strict=True)}


class ExecuTorchBackend(Backend):
    """ExecuTorch with the XNNPACK delegate (fp32), from the PyTorch module or a ``.pte`` file."""

    name = "executorch"
    artifact = "module"
    extra = "executorch"

    def version(self) -> str | None:
        return installed_version("executorch", "executorch")

    def load(self, artifact: Any, **options: Any) -> ExecuTorchSession:
        self.require()
        specs: Sequence[InputSpec] = options.get("inputs", ())
        outputs: Sequence[str] = options.get("outputs", ())
        if is_torch_module(artifact):
            from ferry.convert.executorch import pte_from_module

            lowered = pte_from_module(artifact, specs)
            return ExecuTorchSession(lowered.program, specs, outputs, lowered.dynamic)
        if isinstance(artifact, (str, os.PathLike)) and str(artifact).endswith(".pte"):
            return ExecuTorchSession(Path(artifact).read_bytes(), specs, outputs)
        raise UserError("the executorch backend takes a PyTorch module or a .pte file")
