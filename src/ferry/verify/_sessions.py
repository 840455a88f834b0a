"""Opening the runtimes under test, and what each one can be held to."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ferry.backends import REGISTRY, Session
from ferry.backends.torch import TorchSession
from ferry.compare import DEFAULT_TOLERANCES, Tolerance
from ferry.errors import UnsupportedModelError, UserError, first_line
from ferry.models import LoadedModel
from ferry.specs import TensorInfo
from ferry.subject import Subject
from ferry.verify._results import VerifyConfig


@dataclass
class OpenRuntime:
    """A loaded backend under test."""

    session: Session
    version: str
    gating: bool
    samples_per_shape: int | None


@dataclass
class Unopened:
    """Backends that did not open: refusals (the model cannot run there) and load errors."""

    refused: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: refused backends the user named (a refusal of a runtime asked for fails the run)
    named: set[str] = field(default_factory=set)


def open_sessions(names: Sequence[str], subject: Subject) -> tuple[dict[str, OpenRuntime], Unopened]:
    """Open every named backend but the PyTorch reference (``all``: every installed one).

    Nothing a runtime does stops the others: a refusal (:class:`UnsupportedModelError`: a
    converter's limits, a reduced build) and a crash while loading are recorded with their
    reason, one line each.
    """
    every = list(names) == ["all"]
    chosen = [b for b in REGISTRY.resolve(list(names)) if b.artifact != "torch"]
    if not chosen:
        raise UserError(
            f"no backend to compare with among {', '.join(names)}; installed: {', '.join(REGISTRY.installed())}"
        )
    sessions: dict[str, OpenRuntime] = {}
    unopened = Unopened()
    try:
        for b in chosen:
            try:
                session = b.open(subject)
            except UnsupportedModelError as exc:
                unopened.refused[b.name] = first_line(exc)
                if not every:
                    unopened.named.add(b.name)
                continue
            except Exception as exc:  # a runtime's or converter's failure: its row only
                unopened.errors[b.name] = first_line(exc)
                continue
            gating = not (every and b.informational_in_all)
            sessions[b.name] = OpenRuntime(session, b.version() or "", gating, b.samples_per_shape)
    except BaseException:
        for sub in sessions.values():
            sub.session.close()
        raise
    return sessions, unopened


class Float64Reference:
    """PyTorch eager in float64: a copy of the module and its float inputs cast to double.

    Tensors the module creates itself follow ``torch.get_default_dtype()``, set to float64 for
    the call. An output that still comes back in float32 (the module casts explicitly) is judged
    by tolerance instead.
    """

    def __init__(self, module: torch.nn.Module, inputs: Sequence[TensorInfo], output_names: Sequence[str]) -> None:
        doubled = [TensorInfo(i.name, "float64" if _is_float(i.dtype) else i.dtype, i.shape) for i in inputs]
        self.session = TorchSession(module.double().eval(), doubled, output_names)

    @classmethod
    def open(cls, reference: Session, module: torch.nn.Module) -> tuple[Float64Reference | None, str]:
        """The float64 twin of the float32 reference session, or ``None`` and why not."""
        try:
            twin = copy.deepcopy(module)
        except Exception as exc:  # modules holding locks, files or C handles cannot be copied
            return None, f"the module cannot be copied for a float64 run ({first_line(exc)})"
        assert isinstance(reference, TorchSession)
        return cls(twin, reference.inputs, reference.output_names), ""

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {n: a.astype(np.float64) if a.dtype.kind == "f" else a for n, a in feeds.items()}
        before = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return self.session.run(cast).outputs
        finally:
            torch.set_default_dtype(before)


def _is_float(dtype: str) -> bool:
    return bool(dtype) and np.dtype(dtype).kind == "f"


def fits(session: Session, feeds: Mapping[str, np.ndarray]) -> bool:
    for info in session.inputs:
        shape = np.shape(feeds[info.name]) if info.name in feeds else ()
        if any(isinstance(want, int) and got != want for got, want in zip(shape, info.shape, strict=False)):
            return False
    return True


def static_dims(session: Session) -> str:
    return "; ".join(info.describe() for info in session.inputs)


def default_tolerance(cfg: VerifyConfig, model: LoadedModel, precision: str) -> Tolerance:
    """The rtol/atol for float outputs of one backend under the tolerance rule: the model's,
    widened to what the backend's arithmetic can honestly reach (bf16 keeps 8 bits of mantissa);
    ``--rtol`` and ``--atol`` each replace their own half only."""
    base = Tolerance(*(model.tolerance or DEFAULT_TOLERANCES["float32"]))
    low = {"bf16": "bfloat16", "fp16": "float16"}.get(precision)
    if low is not None:
        floor = Tolerance(*DEFAULT_TOLERANCES[low])
        base = Tolerance(max(base.rtol, floor.rtol), max(base.atol, floor.atol))
    return Tolerance(cfg.rtol if cfg.rtol is not None else base.rtol, cfg.atol if cfg.atol is not None else base.atol)
