"""The backend protocol: a backend loads an artifact into a session; a session runs named arrays.

``Session.run`` checks names, shapes and dtypes against the session's declared inputs and
times the call; subclasses implement only ``_run``.
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.errors import UnsupportedModelError, UserError
from ferry.specs import InputSpec, TensorInfo

if TYPE_CHECKING:
    from ferry.subject import Subject


@dataclass
class RunOutput:
    """Outputs of one ``Session.run`` call and its wall time in seconds."""

    outputs: dict[str, np.ndarray]
    seconds: float


class Session(ABC):
    """A loaded model, ready to run."""

    backend: str = ""
    #: the arithmetic the runtime really uses ("fp32", "bf16", "fp16"): picks the tolerance.
    precision: str = "fp32"
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    settings: dict[str, Any]
    #: what this runtime ships and runs: (file name, bytes), e.g. ("model.pte", 41_234)
    artifact: tuple[str, int] | None = None
    _closed: bool = False

    def __init__(self) -> None:
        self.settings = {}

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate input names, ranks, static dims and dtypes; return a plain dict.

        Raises:
            UserError: naming the input and what was expected.
        """
        expected = {i.name: i for i in self.inputs}
        missing = [n for n in expected if n not in feeds]
        unknown = [n for n in feeds if n not in expected]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown input(s) {', '.join(unknown)}")
            want = "; ".join(i.describe() for i in self.inputs)
            raise UserError(f"{' and '.join(parts)}; the model expects {want}")
        clean: dict[str, np.ndarray] = {}
        for name, info in expected.items():
            arr = np.asarray(feeds[name])
            if arr.dtype != np.dtype(info.dtype):
                raise UserError(f"input {name!r} has dtype {arr.dtype}, expected {info.dtype}")
            if len(arr.shape) != len(info.shape):
                raise UserError(
                    f"input {name!r} has shape {tuple(arr.shape)} (rank {arr.ndim}), expected rank"
                    f" {len(info.shape)}: {info.describe()}"
                )
            for axis, (got, want_dim) in enumerate(zip(arr.shape, info.shape, strict=True)):
                if isinstance(want_dim, int) and got != want_dim:
                    raise UserError(
                        f"input {name!r} has size {got} on axis {axis}, expected {want_dim}: {info.describe()}"
                        " (that axis is static in this model)"
                    )
            clean[name] = arr
        return clean

    def run(self, feeds: Mapping[str, np.ndarray]) -> RunOutput:
        """Run the model on named inputs and return named outputs with the wall time."""
        if self._closed:
            raise UserError(f"this {self.backend or 'runtime'} session is closed; load the model again")
        clean = self.check_feeds(feeds)
        start = time.perf_counter()
        outputs = self._run(clean)
        return RunOutput(outputs=outputs, seconds=time.perf_counter() - start)

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; inputs are already validated."""

    def close(self) -> None:
        """Release what the session holds outside this process's memory (a browser page, a
        server; the in-process runtimes hold nothing of the kind). A closed session refuses to
        run. Subclasses that override it call ``super().close()``."""
        self._closed = True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class BackendInfo:
    """What a backend reports about itself."""

    name: str
    version: str
    available: bool
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A runtime that loads an artifact (an ONNX file or a PyTorch module) into a session."""

    name: str = ""
    #: what the runtime starts from: "onnx" (the exported file), "module" (it lowers the PyTorch
    #: module itself, as ExecuTorch does) or "torch" (PyTorch eager, the reference). Only
    #: :meth:`open` reads it; callers ask :meth:`open` and :meth:`supports`.
    artifact: str = "onnx"
    #: pip extra that installs the runtime, for the "not installed" message.
    extra: str = ""
    #: when brought in by ``--backends all``, report this backend without letting it fail the
    #: verdict (a runtime's lossy default precision); named explicitly, it gates like any other.
    informational_in_all: bool = False
    #: run at most this many samples per shape (slow backends); ``None``: all of them.
    samples_per_shape: int | None = None

    @abstractmethod
    def version(self) -> str | None:
        """The runtime's version, or ``None`` when it is not installed."""

    def available(self) -> bool:
        return self.version() is not None

    def info(self) -> BackendInfo:
        v = self.version()
        reason = "" if v else f"not installed: pip install 'ferry[{self.extra}]'"
        return BackendInfo(self.name, v or "", v is not None, reason)

    def require(self) -> None:
        """Raise a clear error when the runtime is missing."""
        if not self.available():
            from ferry.errors import MissingDependencyError

            raise MissingDependencyError(f"{self.name} is not installed: pip install 'ferry[{self.extra}]'")

    def timing_options(self) -> dict[str, Any]:
        """Load options that make this runtime a fair neighbour when several are timed in turns
        in one process (no busy-waiting worker threads)."""
        return {}

    @abstractmethod
    def load(self, artifact: Any, **options: Any) -> Session:
        """Load an artifact (a file path, or a module with ``inputs``/``outputs``) into a session."""

    def supports(self, subject: Subject) -> str | None:
        """Why this runtime cannot take the model, or ``None``: asked before converting anything."""
        if self.artifact in ("module", "torch") and subject.loaded is None:
            return f"{self.name} needs the PyTorch model: give --model SOURCE with an .onnx file"
        return None

    def open(
        self, subject: Subject, *, specs: Sequence[InputSpec] | None = None, threads: int = 0, timing: bool = False
    ) -> Session:
        """Convert the model where this runtime needs it, then open a session on it.

        Args:
            subject: the model, its ONNX file and its specs.
            specs: input specs to open at (default: the subject's); a lowered or traced program
                is made for these sizes.
            threads: intra-op threads (0: the runtime's default).
            timing: the session is timed in turns with other runtimes in this process (no
                busy-waiting worker threads, see :meth:`timing_options`).

        Raises:
            UnsupportedModelError: this runtime (or its converter) cannot take the model.
            UserError: the runtime failed to load it.
        """
        reason = self.supports(subject)
        if reason is not None:
            raise UnsupportedModelError(reason)
        chosen = tuple(specs if specs is not None else subject.specs)
        if self.artifact == "torch":
            assert subject.loaded is not None
            inputs = (
                [TensorInfo(s.name, s.dtype, s.shape) for s in chosen] if specs is not None else subject.graph_inputs
            )
            return self.load(subject.loaded.module, inputs=inputs, outputs=subject.output_names, threads=threads)
        if self.artifact == "module":
            assert subject.loaded is not None
            return self.load(subject.loaded.module, inputs=chosen, outputs=subject.output_names)
        options = (self.timing_options() if timing else {}) | ({"threads": threads} if threads else {})
        session = self.load(os.fspath(subject.onnx_path), **options)
        if session.artifact is None:
            session.artifact = (subject.onnx_path.name, subject.onnx_path.stat().st_size)
        return session


def is_torch_module(obj: Any) -> bool:
    """Whether ``obj`` is an ``nn.Module``, without importing torch: none can exist before torch
    is imported, and the runtimes' modules stay importable without it (``ferry upscale`` of a
    cached export never imports torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
