"""Parity verification: PyTorch eager against ONNX runtimes, on several samples and shapes."""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferry import samples, tasks
from ferry.backends import REGISTRY, Session
from ferry.compare import DEFAULT_TOLERANCES, OutputStats, Tolerance, compare_outputs
from ferry.errors import UnsupportedModelError, UserError
from ferry.models import LoadedModel
from ferry.specs import Dim, InputSpec
from ferry.subject import Subject, resolve
from ferry.tasks import TaskReport


@dataclass(frozen=True)
class VerifyConfig:
    """How to verify.

    Attributes:
        backends: runtimes to compare with PyTorch eager (``["all"]`` for every installed one).
        samples: random samples per input shape.
        seed: seed for the samples.
        rtol: global relative tolerance (overrides the model's and the dtype default).
        atol: global absolute tolerance.
        tolerances: per-output tolerances (override everything else).
        other_shapes: also verify at shapes other than the export shape when dims are dynamic.
        localize: when a backend fails, find the first diverging ONNX node (and PyTorch module).
    """

    backends: tuple[str, ...] = ("onnxruntime",)
    samples: int = 3
    seed: int = 0
    rtol: float | None = None
    atol: float | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    other_shapes: bool = True
    localize: bool = True


@dataclass
class Check:
    """One backend on one sample at one shape."""

    backend: str
    shape: str
    sample: int
    outputs: list[OutputStats]
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and all(self.outputs)


@dataclass
class BackendVerdict:
    """All checks of one backend, with its worst numbers per output."""

    name: str
    version: str
    settings: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    #: False for a backend reported for information only (it does not decide ``VerifyReport.ok``).
    gating: bool = True
    #: what was not checked and why (e.g. shapes a static-shape target cannot take)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def worst(self) -> dict[str, OutputStats]:
        """Per output, the check with the largest normalised error (failures first)."""
        out: dict[str, OutputStats] = {}
        for c in self.checks:
            for s in c.outputs:
                cur = out.get(s.name)
                if cur is None or (cur.ok and not s.ok) or (cur.ok == s.ok and s.max_abs_diff > cur.max_abs_diff):
                    out[s.name] = s
        return out

    @property
    def errors(self) -> list[str]:
        return sorted({f"{c.shape}: {c.error}" for c in self.checks if c.error})

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst()
        finite = [s.max_abs_diff for s in worst.values()]
        rel = [s.max_rel_diff for s in worst.values()]
        times = [c.seconds for c in self.checks if not c.error]
        return {
            "ok": self.ok,
            "gating": self.gating,
            "version": self.version,
            "settings": self.settings,
            "max_abs_diff": max(finite) if finite else None,
            "max_rel_diff": max(rel) if rel else None,
            "median_seconds": statistics.median(times) if times else None,
            "outputs": {n: s.to_dict() for n, s in worst.items()},
            "errors": self.errors,
            "checks": len(self.checks),
            "failed_checks": sum(not c.ok for c in self.checks),
            "notes": self.notes,
        }


@dataclass
class VerifyReport:
    """The result of :func:`verify`; truthy only when every backend passed."""

    source: str
    onnx_path: Path
    shapes: list[dict[str, list[int]]]
    samples: int
    backends: dict[str, BackendVerdict]
    reference: dict[str, Any]
    first_divergence: dict[str, Any] | None = None
    #: super-resolution on real photos per runtime (``photos=`` given and a Y-channel SR model)
    photos: TaskReport | None = None

    @property
    def ok(self) -> bool:
        gating = [b for b in self.backends.values() if b.gating]
        return bool(gating) and all(b.ok for b in gating)

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "model": self.source,
            "onnx": str(self.onnx_path),
            "reference": self.reference,
            "shapes": self.shapes,
            "samples_per_shape": self.samples,
            "backends": {n: b.to_dict() for n, b in self.backends.items()},
            "first_divergence": self.first_divergence,
            "photos": self.photos.to_dict() if self.photos else None,
        }


@dataclass
class _Subject:
    """A loaded backend under test."""

    session: Session
    version: str
    gating: bool
    samples_per_shape: int | None


def _open_sessions(names: Sequence[str], subject: Subject) -> tuple[dict[str, _Subject], dict[str, str]]:
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
    sessions: dict[str, _Subject] = {}
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
            sessions[b.name] = _Subject(session, b.version() or "", gating, b.samples_per_shape)
    except BaseException:
        for sub in sessions.values():
            sub.session.close()
        raise
    return sessions, refused


def _fits(session: Session, feeds: Mapping[str, np.ndarray]) -> bool:
    for info in session.inputs:
        shape = np.shape(feeds[info.name]) if info.name in feeds else ()
        if any(isinstance(want, int) and got != want for got, want in zip(shape, info.shape, strict=False)):
            return False
    return True


def _static_dims(session: Session) -> str:
    return "; ".join(info.describe() for info in session.inputs)


def _default_tolerance(cfg: VerifyConfig, model: LoadedModel, precision: str) -> Tolerance | None:
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


def _verdicts(sessions: Mapping[str, _Subject], refused: Mapping[str, str]) -> dict[str, BackendVerdict]:
    """An empty verdict per opened backend, and a one-check verdict per refusal (not gating)."""
    verdicts = {
        name: BackendVerdict(name=name, version=sub.version, settings=dict(sub.session.settings), gating=sub.gating)
        for name, sub in sessions.items()
    }
    for name, reason in refused.items():
        verdict = BackendVerdict(name=name, version=REGISTRY.get(name).version() or "", settings={}, gating=False)
        verdict.checks.append(Check(name, "load", 0, [], 0.0, reason))
        verdicts[name] = verdict
    return verdicts


Case = tuple[str, int, dict[str, np.ndarray]]


def _cases(
    specs: Sequence[InputSpec], cfg: VerifyConfig, data: Sequence[tuple[str, Mapping[str, np.ndarray]]] | None
) -> tuple[list[Case], list[dict[str, list[int]]]]:
    """(label, sample index, inputs) to check: seeded samples at every shape variant, then the
    user's data; and the distinct input shapes among them."""
    cases: list[Case] = []
    shapes: list[dict[str, list[int]]] = []
    if specs:
        for sizes in samples.shape_variants(specs) if cfg.other_shapes else [{}]:
            current = [s.with_sizes(sizes) for s in specs]
            shapes.append({s.name: list(s.shape) for s in current})
            cases += [(samples.label(current), k, samples.sample(current, cfg.seed, k)) for k in range(cfg.samples)]
    for k, (label, feeds) in enumerate(data or ()):
        cases.append((label, k, dict(feeds)))
        shape = {n: list(np.shape(a)) for n, a in feeds.items()}
        if shape not in shapes:
            shapes.append(shape)
    return cases, shapes


def _run_cases(
    cases: Sequence[Case],
    reference: Session,
    sessions: Mapping[str, _Subject],
    verdicts: Mapping[str, BackendVerdict],
    tolerances: Mapping[str, Tolerance],
    defaults: Mapping[str, Tolerance | None],
) -> dict[str, dict[str, np.ndarray]]:
    """Run PyTorch and every backend on each case and record the checks; returns, per gating
    ONNX backend that failed, the first inputs it failed on (for localization)."""
    failing: dict[str, dict[str, np.ndarray]] = {}
    for label, index, feeds in cases:
        try:
            ref = reference.run(feeds).outputs
        except UserError:
            raise
        except Exception as exc:  # the user's forward() may raise anything at a new shape
            raise UserError(f"the PyTorch model failed at {label}: {type(exc).__name__}: {exc}") from exc
        for name, sub in sessions.items():
            if sub.samples_per_shape is not None and index >= sub.samples_per_shape:
                continue
            if REGISTRY.get(name).artifact == "module" and not _fits(sub.session, feeds):
                # The lowering fixed a dim the export kept dynamic: this target is static there.
                note = f"{label}: not run, the lowered program is static ({_static_dims(sub.session)})"
                if note not in verdicts[name].notes:
                    verdicts[name].notes.append(note)
                continue
            try:
                got = sub.session.run(feeds)
            except UserError as exc:
                verdicts[name].checks.append(Check(name, label, index, [], 0.0, str(exc)))
                continue
            stats = compare_outputs(ref, got.outputs, tolerances=tolerances, default=defaults[name])
            check = Check(name, label, index, stats, got.seconds)
            verdicts[name].checks.append(check)
            localizable = REGISTRY.get(name).artifact == "onnx"  # localization walks the ONNX graph
            if not check.ok and verdicts[name].gating and name not in failing and localizable:
                failing[name] = feeds
    return failing


def _task_report(
    subject: Subject, sessions: Mapping[str, _Subject], photos: str | os.PathLike[str]
) -> TaskReport | None:
    """The model's task section on real photos (super-resolution: every runtime upscales them)."""
    assert subject.loaded is not None
    _, task = tasks.of(subject.loaded.task)
    if task is None or task.photo_report is None:
        return None
    # Slow oracles (the numpy reference evaluator) check semantics, not photos.
    runtimes = {name: sub.session for name, sub in sessions.items() if sub.samples_per_shape is None}

    def reopen(name: str, sizes: Mapping[str, int]) -> Session:
        """A runtime's session converted at static sizes (one photo's)."""
        shaped = [replace(s, dims=tuple(Dim(sizes.get(d.name or "", d.size)) for d in s.dims)) for s in subject.specs]
        return REGISTRY.get(name).open(subject, specs=shaped)

    report: TaskReport | None = task.photo_report(subject.loaded, runtimes, photos, subject.onnx_path, reopen)
    return report


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
    sessions, refused = _open_sessions(cfg.backends, subject)
    try:
        if not sessions and not refused:
            raise UserError(f"no backend among {', '.join(cfg.backends)} could load the model")
        # PyTorch is held to the ONNX file's input contract (names, dtypes, static dims).
        reference = REGISTRY.get("torch").open(subject)
        tolerances = {n: Tolerance(*t) for n, t in loaded.output_tolerances.items()} | dict(cfg.tolerances)
        defaults = {name: _default_tolerance(cfg, loaded, sub.session.precision) for name, sub in sessions.items()}
        verdicts = _verdicts(sessions, refused)
        cases, shapes = _cases(specs, cfg, data)
        failing = _run_cases(cases, reference, sessions, verdicts, tolerances, defaults)
        divergence = None
        if failing and cfg.localize:
            from ferry.localize import locate_divergence

            name, feeds = next(iter(failing.items()))
            divergence = locate_divergence(
                path, feeds, backend=name, module=loaded.module, tolerance=defaults[name] or Tolerance(1e-4, 1e-5)
            )
        comparison = _task_report(subject, sessions, photos) if photos is not None else None
        return VerifyReport(
            source=loaded.source,
            onnx_path=path,
            shapes=shapes,
            samples=cfg.samples,
            backends=verdicts,
            reference={"backend": "torch", "version": torch.__version__, "mode": "eager"},
            first_divergence=divergence,
            photos=comparison,
        )
    finally:
        for sub in sessions.values():
            sub.session.close()


def image_data(model: LoadedModel, folder: str | os.PathLike[str]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Samples from a folder of images through the model's declared preprocessing.

    Raises:
        UserError: when the model declares no preprocessing or the folder holds no image.
    """
    if model.preprocess is None:
        raise UserError(f"{model.source} declares no image preprocessing; give --input .npy files instead of --images")
    return samples.image_samples(folder, model.preprocess, [s.name for s in model.inputs])


def parity_rows(report: VerifyReport) -> list[list[object]]:
    """One row per backend and output: the worst numbers over every shape and sample."""
    from ferry.report import Raw, verdict

    rows: list[list[object]] = []
    for name, b in report.backends.items():
        precision = str(b.settings.get("precision", "fp32"))
        worst = b.worst()
        if not worst:
            rows.append([name, precision, "-", Raw(verdict(False)), "-", "-", "-", "-", "; ".join(b.errors)])
        for out, s in worst.items():
            tol = "exact" if s.rtol is None else f"{s.rtol:.0e}/{s.atol:.0e}"
            mark = Raw(verdict(b.ok)) if b.gating else f"{'pass' if b.ok else 'differs'} (info)"
            rows.append(
                [
                    name,
                    precision,
                    out,
                    mark,
                    s.max_abs_diff,
                    s.max_rel_diff,
                    s.mismatch_fraction,
                    s.cosine_similarity,
                    tol,
                ]
            )
    return rows


PARITY_HEADERS = ["backend", "precision", "output", "verdict", "max abs", "max rel", "mismatch", "cosine", "rtol/atol"]


def write_report(report: VerifyReport, path: str | os.PathLike[str]) -> Path:
    """Write a self-contained HTML page with the parity table and the shapes checked."""
    from ferry.report import esc, table, write_html

    shape_rows = [
        [i + 1, " ".join(f"{name}={'x'.join(map(str, dims))}" for name, dims in s.items())]
        for i, s in enumerate(report.shapes)
    ]
    shapes = table(["#", "input shapes"], shape_rows)
    errors = "".join(
        f'<p class="fail">{esc(name)}: {esc(e)}</p>' for name, b in report.backends.items() for e in b.errors
    )
    if report.first_divergence:
        rows = [[k, str(v)] for k, v in report.first_divergence.items()]
        errors += "<h3>First divergence</h3>" + table(["", ""], rows)
    sections = [
        ("Parity with PyTorch eager", table(PARITY_HEADERS, parity_rows(report)) + errors),
        *_photo_sections(report),
        ("Error histograms (|runtime - PyTorch| per element, worst sample)", _histograms(report)),
        (f"Shapes checked ({report.samples} random samples each)", shapes),
    ]
    return write_html(path, f"ferry verify: {report.source}", sections, subtitle=str(report.onnx_path))


def _photo_sections(report: VerifyReport) -> list[tuple[str, str]]:
    """The task's own section (for super-resolution: every runtime on real photos)."""
    if report.photos is None:
        return []
    from ferry.report import table

    return [(report.photos.title, table(report.photos.headers, report.photos.rows()) + report.photos.html())]


def _histograms(report: VerifyReport) -> str:
    """Inline bar charts (plain HTML, no scripts) of each output's error distribution."""
    from ferry.compare import HISTOGRAM_LABELS
    from ferry.report import esc

    parts = []
    for name, b in report.backends.items():
        for out, s in b.worst().items():
            if not s.histogram:
                continue
            total = max(1, sum(s.histogram))
            bars = "".join(
                f'<div style="display:flex;align-items:center;gap:.4rem;font-size:.8rem">'
                f'<span style="width:4rem;text-align:right">{esc(label)}</span>'
                f'<span style="background:#4a7bd0;height:.8rem;width:{300 * n / total:.1f}px"></span>'
                f"<span>{n}</span></div>"
                for label, n in zip(HISTOGRAM_LABELS, s.histogram, strict=True)
            )
            parts.append(f"<figure><figcaption>{esc(name)} / {esc(out)}</figcaption>{bars}</figure>")
    return "".join(parts) or "<p>no outputs compared</p>"
