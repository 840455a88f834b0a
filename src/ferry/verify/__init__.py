"""``ferry verify``: does the exported model compute what the PyTorch model computes, on every runtime?

PyTorch eager and each runtime run the same seeded samples at the export shape and, when dims
are dynamic, at smaller and larger shapes; every output is compared; a failure is localized to
the first diverging node. The stage reads like its table of contents; the steps live in the
private modules beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferry import samples
from ferry.backends import REGISTRY, Session
from ferry.compare import Tolerance
from ferry.errors import UserError, first_line
from ferry.models import LoadedModel
from ferry.specs import InputSpec
from ferry.subject import resolve
from ferry.verify._compare import Judge, cases_for, empty_verdicts, run_cases, task_report
from ferry.verify._report import PARITY_HEADERS, failures, parity_rows, summary_text, write_junit, write_report
from ferry.verify._results import BackendVerdict, Check, VerifyConfig, VerifyReport
from ferry.verify._sessions import Float64Reference, OpenRuntime, default_tolerance, open_sessions

__all__ = [
    "PARITY_HEADERS",
    "BackendVerdict",
    "Check",
    "VerifyConfig",
    "VerifyReport",
    "failures",
    "image_data",
    "parity_rows",
    "summary_text",
    "verify",
    "write_junit",
    "write_report",
]


def verify(
    model: str | torch.nn.Module | LoadedModel,
    onnx_path: str | os.PathLike[str],
    *,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: VerifyConfig | None = None,
    data: Sequence[tuple[str, Mapping[str, np.ndarray]]] | None = None,
    photos: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Check that an ONNX file computes what the PyTorch model computes.

    Runs PyTorch eager and each backend on ``config.samples`` random samples at the export shape
    and, when dims are dynamic, at smaller and larger shapes; compares every output.

    Args:
        model: the PyTorch model (source string, module or LoadedModel).
        onnx_path: the exported file.
        inputs: input specs; default: the model's declared ones, else those stored in the file.
        args: constructor keyword arguments.
        weights: a state dict to load.
        config: backends, samples and tolerances.
        data: extra labelled samples (named arrays), e.g. from ``.npy`` files or images.
        photos: a folder of photos; for a Y-channel super-resolution model every runtime also
            upscales them through the YCbCr pipeline and is compared with PyTorch's result
            (PSNR vs PyTorch and vs the original, largest pixel difference, latency, file size).

    Example:
        >>> report = ferry.verify("zoo:superres", "sr.onnx")
        >>> report.ok
        True
    """
    cfg = config or VerifyConfig()
    if cfg.samples < 1:
        raise UserError("--samples must be at least 1")
    subject = resolve(model, onnx=onnx_path, args=args, weights=weights, inputs=inputs)
    loaded, path, specs = subject.loaded, subject.onnx_path, subject.specs
    assert loaded is not None  # a model source was given
    if not specs and not data:
        raise UserError(f"no input shapes known for {path}; give --input specs or files")
    sessions, unopened = open_sessions(cfg.backends, subject)
    try:
        # PyTorch is held to the ONNX file's input contract (names, dtypes, static dims).
        reference = REGISTRY.get("torch").open(subject)
        judge = _judge(cfg, loaded, reference, sessions)
        verdicts = empty_verdicts(sessions, unopened)
        cases, shapes = cases_for(specs, cfg, data)
        failing = run_cases(cases, reference, sessions, verdicts, judge)
        divergence = _first_divergence(path, failing, loaded, cfg) if failing and cfg.localize else None
        comparison = task_report(subject, sessions, photos) if photos is not None else None
        return VerifyReport(
            source=loaded.source,
            onnx_path=path,
            shapes=shapes,
            samples=cfg.samples,
            backends=verdicts,
            reference={
                "backend": "torch",
                "version": torch.__version__,
                "mode": "eager",
                "rule": "tolerance" if cfg.fixed else "noise",
                "float64": judge.float64 is not None,
                "notes": judge.notes,
            },
            first_divergence=divergence,
            photos=comparison,
        )
    finally:
        for sub in sessions.values():
            sub.session.close()


def _judge(cfg: VerifyConfig, loaded: LoadedModel, reference: Session, sessions: Mapping[str, OpenRuntime]) -> Judge:
    """The rule, the tolerances and (under the noise rule) PyTorch's float64 twin."""
    tolerances = {n: Tolerance(*t) for n, t in loaded.output_tolerances.items()} | dict(cfg.tolerances)
    defaults = {name: default_tolerance(cfg, loaded, sub.session.precision) for name, sub in sessions.items()}
    judge = Judge(tolerances, defaults, None, cfg.noise, classes=frozenset(class_scores(loaded, reference)))
    if not cfg.fixed and sessions:
        judge.float64, why = Float64Reference.open(reference, loaded.module)
        if why:
            judge.note(f"{why}: judged by rtol/atol")
    return judge


def class_scores(loaded: LoadedModel, reference: Session) -> list[str]:
    """Outputs holding class scores: every output of a classification model, and outputs named
    ``logits`` (transformers' name for them) in any model."""
    names = [i.name for i in reference.outputs]
    if loaded.task.get("kind") == "classification":
        return names
    return [n for n in names if "logits" in n.lower()]


def _first_divergence(
    path: Path, failing: Mapping[str, dict[str, np.ndarray]], loaded: LoadedModel, cfg: VerifyConfig
) -> dict[str, Any] | None:
    """The first diverging node of the first failing backend; a failure to localize is reported,
    not raised (the verdict stands without it)."""
    from ferry.verify._localize import locate_divergence

    name, feeds = next(iter(failing.items()))
    tolerance = default_tolerance(cfg, loaded, "fp32")
    try:
        return locate_divergence(path, feeds, backend=name, module=loaded.module, tolerance=tolerance)
    except Exception as exc:  # localization is a diagnosis; its failure must not hide the verdict
        return {"error": f"could not localize the divergence: {first_line(exc)}"}


def image_data(model: LoadedModel, folder: str | os.PathLike[str]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Samples from a folder of images through the model's declared preprocessing.

    Raises:
        UserError: when the model declares no preprocessing or the folder holds no image.
    """
    if model.preprocess is None:
        raise UserError(f"{model.source} declares no image preprocessing; give --input .npy files instead of --images")
    return samples.image_samples(folder, model.preprocess, [s.name for s in model.inputs])
