"""Opening the runtimes under test, and what each one can be held to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ferry.backends import REGISTRY, Session
from ferry.compare import DEFAULT_TOLERANCES, Tolerance
from ferry.errors import UnsupportedModelError, UserError
from ferry.models import LoadedModel
from ferry.subject import Subject
from ferry.verify._results import VerifyConfig


@dataclass
class OpenRuntime:
    """A loaded backend under test."""

    session: Session
    version: str
    gating: bool
    samples_per_shape: int | None


def open_sessions(names: Sequence[str], subject: Subject) -> tuple[dict[str, OpenRuntime], dict[str, str]]:
    """Open every named backend but the PyTorch reference (``all``: every installed one).

    Under ``all``, a runtime that cannot take the model (:class:`UnsupportedModelError`: a
    converter's refusal, a reduced build) is recorded with its reason instead of failing the run:
    the model simply does not run there. Named explicitly, its refusal is the error.
    """
    every = list(names) == ["all"]
    chosen = [b for b in REGISTRY.resolve(list(names)) if b.artifact != "torch"]
    if not chosen:
        raise UserError(
            f"no backend to compare with among {', '.join(names)}; installed: {', '.join(REGISTRY.installed())}"
        )
    sessions: dict[str, OpenRuntime] = {}
    refused: dict[str, str] = {}
    try:
        for b in chosen:
            try:
                session = b.open(subject)
            except UnsupportedModelError as exc:
                if not every:
                    raise
                refused[b.name] = str(exc)
                continue
            gating = not (every and b.informational_in_all)
            sessions[b.name] = OpenRuntime(session, b.version() or "", gating, b.samples_per_shape)
    except BaseException:
        for sub in sessions.values():
            sub.session.close()
        raise
    return sessions, refused


def fits(session: Session, feeds: Mapping[str, np.ndarray]) -> bool:
    for info in session.inputs:
        shape = np.shape(feeds[info.name]) if info.name in feeds else ()
        if any(isinstance(want, int) and got != want for got, want in zip(shape, info.shape, strict=False)):
            return False
    return True


def static_dims(session: Session) -> str:
    return "; ".join(info.describe() for info in session.inputs)


def default_tolerance(cfg: VerifyConfig, model: LoadedModel, precision: str) -> Tolerance | None:
    """The tolerance for float outputs of one backend: the user's, else the model's, widened to
    what the backend's arithmetic can honestly reach (bf16 keeps 8 bits of mantissa)."""
    if cfg.rtol is not None or cfg.atol is not None:
        return Tolerance(cfg.rtol or 0.0, cfg.atol or 0.0)
    base = Tolerance(*model.tolerance) if model.tolerance else None
    low = {"bf16": "bfloat16", "fp16": "float16"}.get(precision)
    if low is None:
        return base
    floor = Tolerance(*DEFAULT_TOLERANCES[low])
    if base is None:
        return floor
    return Tolerance(max(base.rtol, floor.rtol), max(base.atol, floor.atol))
