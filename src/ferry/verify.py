"""Parity verification: PyTorch eager against ONNX runtimes, on several samples and shapes."""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferry.backends import REGISTRY, Session, TensorInfo
from ferry.compare import OutputStats, Tolerance, compare_outputs
from ferry.errors import UserError
from ferry.models import LoadedModel, load_model, named_inputs
from ferry.run import load_onnx, stored_specs
from ferry.specs import InputSpec

# (scale, offset) of the random normals per sample: different signs and magnitudes, so that a
# branch frozen at export on one kind of input shows up on another.
SAMPLE_PATTERNS: tuple[tuple[float, float], ...] = ((1.0, 0.0), (0.25, 0.5), (3.0, -1.0), (0.5, -2.0), (2.0, 2.0))


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
    """

    backends: tuple[str, ...] = ("onnxruntime",)
    samples: int = 3
    seed: int = 0
    rtol: float | None = None
    atol: float | None = None
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    other_shapes: bool = True


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
            "version": self.version,
            "settings": self.settings,
            "max_abs_diff": max(finite) if finite else None,
            "max_rel_diff": max(rel) if rel else None,
            "median_seconds": statistics.median(times) if times else None,
            "outputs": {n: s.to_dict() for n, s in worst.items()},
            "errors": self.errors,
            "checks": len(self.checks),
            "failed_checks": sum(not c.ok for c in self.checks),
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

    @property
    def ok(self) -> bool:
        return bool(self.backends) and all(b.ok for b in self.backends.values())

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
        }


def _is_batch(spec: InputSpec, axis: int) -> bool:
    name = spec.dims[axis].name or ""
    return "batch" in name.lower() or (axis == 0 and name.lower() in ("n", "b", "bs"))


def _step(size: int) -> int:
    """The largest power of two (up to 32) dividing ``size``: keeps strided models' shapes valid."""
    step = 1
    while step < 32 and size % (step * 2) == 0:
        step *= 2
    return step


def shape_variants(specs: Sequence[InputSpec]) -> list[dict[str, int]]:
    """Sizes of the dynamic dims to verify at: the export sizes, then smaller and larger ones.

    A batch dim goes to 1 and to its size + 1 (so batch > 1 is always covered); other dims
    shrink and grow by about half their size, in multiples of their power-of-two step.
    """
    base: dict[str, int] = {}
    batch: set[str] = set()
    for spec in specs:
        for axis, dim in enumerate(spec.dims):
            if dim.name:
                base[dim.name] = dim.size
                if _is_batch(spec, axis):
                    batch.add(dim.name)
    if not base:
        return [{}]
    smaller, larger = {}, {}
    for name, size in base.items():
        if name in batch:
            smaller[name], larger[name] = 1 if size > 1 else size, size + 1
            continue
        step = _step(size)
        while step > 1 and size - max(step, (size // 2) // step * step) < 1:
            step //= 2
        delta = max(step, (size // 2) // step * step)
        smaller[name] = size - delta if size - delta >= 1 else size
        larger[name] = size + max(delta, _step(size))
    variants: list[dict[str, int]] = []
    for v in (base, smaller, larger):
        if v not in variants:
            variants.append(v)
    return variants


def _label(specs: Sequence[InputSpec]) -> str:
    return " ".join(f"{s.name}={'x'.join(map(str, s.shape))}" for s in specs)


def _sample(specs: Sequence[InputSpec], seed: int, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, index])
    scale, offset = SAMPLE_PATTERNS[index % len(SAMPLE_PATTERNS)]
    return {s.name: s.sample(rng, scale=scale, offset=offset) for s in specs}


def _open_backends(names: Sequence[str], path: Path) -> dict[str, tuple[Session, str]]:
    chosen = REGISTRY.resolve(list(names))
    sessions: dict[str, tuple[Session, str]] = {}
    for b in chosen:
        if b.artifact != "onnx":
            continue  # the torch backend is the reference, not a test subject
        sessions[b.name] = (b.load(os.fspath(path)), b.version() or "")
    if not sessions:
        raise UserError(f"no ONNX backend among {', '.join(names)}; installed: {', '.join(REGISTRY.installed())}")
    return sessions


def verify(
    model: str | torch.nn.Module | LoadedModel,
    onnx_path: str | os.PathLike[str],
    *,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: VerifyConfig | None = None,
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

    Example:
        >>> report = ferry.verify("zoo:superres", "sr.onnx")
        >>> report.ok
        True
    """
    cfg = config or VerifyConfig()
    if cfg.samples < 1:
        raise UserError("--samples must be at least 1")
    path = Path(onnx_path)
    proto = load_onnx(path, load_external_data=False)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, args=args, weights=weights)
    specs = named_inputs(loaded, inputs or loaded.inputs or stored_specs(proto))
    sessions = _open_backends(cfg.backends, path)
    first = next(iter(sessions.values()))[0]
    onnx_inputs = [i.name for i in first.inputs]
    if [s.name for s in specs] != onnx_inputs:
        if len(specs) != len(onnx_inputs):
            raise UserError(f"{path} has inputs {onnx_inputs} but the model takes {[s.name for s in specs]}")
        specs = tuple(s.with_name(n) for s, n in zip(specs, onnx_inputs, strict=True))
    output_names = [o.name for o in first.outputs]
    infos = [TensorInfo(s.name, s.dtype, tuple(None if d.name else d.size for d in s.dims)) for s in specs]
    reference = REGISTRY.get("torch").load(loaded.module, inputs=infos, outputs=output_names)
    default = None
    if cfg.rtol is not None or cfg.atol is not None:
        default = Tolerance(cfg.rtol if cfg.rtol is not None else 0.0, cfg.atol if cfg.atol is not None else 0.0)
    elif loaded.tolerance:
        default = Tolerance(*loaded.tolerance)
    verdicts = {
        name: BackendVerdict(name=name, version=version, settings=dict(sess.settings))
        for name, (sess, version) in sessions.items()
    }
    variants = shape_variants(specs) if cfg.other_shapes else [{}]
    shapes: list[dict[str, list[int]]] = []
    for sizes in variants:
        current = [s.with_sizes(sizes) for s in specs]
        shapes.append({s.name: list(s.shape) for s in current})
        label = _label(current)
        for index in range(cfg.samples):
            feeds = _sample(current, cfg.seed, index)
            try:
                ref = reference.run(feeds).outputs
            except UserError:
                raise
            except Exception as exc:  # the user's forward() may raise anything at a new shape
                raise UserError(f"the PyTorch model failed at {label}: {type(exc).__name__}: {exc}") from exc
            for name, (sess, _) in sessions.items():
                try:
                    got = sess.run(feeds)
                except UserError as exc:
                    verdicts[name].checks.append(Check(name, label, index, [], 0.0, str(exc)))
                    continue
                stats = compare_outputs(ref, got.outputs, tolerances=cfg.tolerances, default=default)
                verdicts[name].checks.append(Check(name, label, index, stats, got.seconds))
    return VerifyReport(
        source=loaded.source,
        onnx_path=path,
        shapes=shapes,
        samples=cfg.samples,
        backends=verdicts,
        reference={"backend": "torch", "version": torch.__version__, "mode": "eager"},
    )


def parity_rows(report: VerifyReport) -> list[list[object]]:
    """One row per backend and output: the worst numbers over every shape and sample."""
    from ferry.report import Raw, verdict

    rows: list[list[object]] = []
    for name, b in report.backends.items():
        worst = b.worst()
        if not worst:
            rows.append([name, "-", Raw(verdict(False)), "-", "-", "-", "-", "; ".join(b.errors)])
        for out, s in worst.items():
            tol = "exact" if s.rtol is None else f"rtol {s.rtol:g}, atol {s.atol:g}"
            rows.append(
                [
                    name,
                    out,
                    Raw(verdict(b.ok)),
                    s.max_abs_diff,
                    s.max_rel_diff,
                    s.mismatch_fraction,
                    s.cosine_similarity,
                    tol,
                ]
            )
    return rows


PARITY_HEADERS = ["backend", "output", "verdict", "max abs diff", "max rel diff", "mismatch", "cosine", "tolerance"]


def write_report(report: VerifyReport, path: str | os.PathLike[str]) -> Path:
    """Write a self-contained HTML page with the parity table and the shapes checked."""
    from ferry.report import esc, table, write_html

    shapes = table(["#", "input shapes"], [[i + 1, esc(s)] for i, s in enumerate(report.shapes)])
    errors = "".join(
        f'<p class="fail">{esc(name)}: {esc(e)}</p>' for name, b in report.backends.items() for e in b.errors
    )
    sections = [
        ("Parity with PyTorch eager", table(PARITY_HEADERS, parity_rows(report)) + errors),
        (f"Shapes checked ({report.samples} samples each)", shapes),
    ]
    return write_html(path, f"ferry verify: {report.source}", sections, subtitle=str(report.onnx_path))
