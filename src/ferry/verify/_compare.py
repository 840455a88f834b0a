"""Running PyTorch and every runtime on the same samples, check by check."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ferry import samples, tasks
from ferry.backends import REGISTRY, Session
from ferry.compare import NoiseRule, Tolerance, compare_outputs, top1_agreement
from ferry.errors import UserError, first_line
from ferry.specs import Dim, InputSpec
from ferry.subject import Subject
from ferry.tasks import TaskReport
from ferry.verify._results import BackendVerdict, Check, VerifyConfig
from ferry.verify._sessions import Float64Reference, OpenRuntime, Unopened, fits, static_dims


def empty_verdicts(sessions: Mapping[str, OpenRuntime], unopened: Unopened) -> dict[str, BackendVerdict]:
    """An empty verdict per opened backend; a refusal or load error per backend that did not
    open (refusals gate only when the user named the backend)."""
    verdicts = {
        name: BackendVerdict(name=name, version=sub.version, settings=dict(sub.session.settings), gating=sub.gating)
        for name, sub in sessions.items()
    }
    for name, reason in unopened.refused.items():
        version = REGISTRY.get(name).version() or ""
        verdicts[name] = BackendVerdict(name, version, {}, gating=name in unopened.named, refused=reason)
    for name, reason in unopened.errors.items():
        verdicts[name] = BackendVerdict(name, REGISTRY.get(name).version() or "", {}, error=reason)
    return verdicts


Case = tuple[str, int, dict[str, np.ndarray]]


def cases_for(
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


@dataclass
class Judge:
    """How outputs are judged: the rule, the tolerances, and PyTorch's float64 twin."""

    tolerances: Mapping[str, Tolerance]
    defaults: Mapping[str, Tolerance]
    float64: Float64Reference | None
    rule: NoiseRule
    #: class-score outputs, which also get their top-1 agreement with PyTorch
    classes: frozenset[str] = frozenset()
    #: why outputs were judged by tolerance instead of against float64 (once per reason)
    notes: list[str] = field(default_factory=list)

    def exact(self, label: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """PyTorch's float64 outputs for one case, or ``None`` (noted) when it cannot run."""
        if self.float64 is None:
            return None
        try:
            return self.float64.run(feeds)
        except Exception as exc:  # double kernels missing, dtype-specific code: judge by tolerance
            self.note(f"PyTorch could not run in float64 at {label} ({first_line(exc)}): judged by rtol/atol there")
            return None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def run_cases(
    cases: Sequence[Case],
    reference: Session,
    sessions: Mapping[str, OpenRuntime],
    verdicts: Mapping[str, BackendVerdict],
    judge: Judge,
) -> dict[str, dict[str, np.ndarray]]:
    """Run PyTorch and every backend on each case and record the checks; returns, per gating
    ONNX backend that failed, the first inputs it failed on (for localization)."""
    failing: dict[str, dict[str, np.ndarray]] = {}
    for label, index, feeds in cases:
        try:
            ref = reference.run(feeds).outputs
        except UserError:
            raise
        except (Exception, SystemExit) as exc:  # the user's forward() may raise anything at a new shape
            raise UserError(f"the PyTorch model failed at {label}: {type(exc).__name__}: {exc}") from exc
        exact = judge.exact(label, feeds)
        for name, sub in sessions.items():
            check = _check(name, sub, label, index, feeds, ref, exact, judge, verdicts[name])
            if check is None:
                continue
            verdicts[name].checks.append(check)
            localizable = REGISTRY.get(name).artifact == "onnx"  # localization walks the ONNX graph
            if not check.ok and not check.error and verdicts[name].gating and name not in failing and localizable:
                failing[name] = feeds
    return failing


def _check(
    name: str,
    sub: OpenRuntime,
    label: str,
    index: int,
    feeds: Mapping[str, np.ndarray],
    ref: Mapping[str, np.ndarray],
    exact: Mapping[str, np.ndarray] | None,
    judge: Judge,
    verdict: BackendVerdict,
) -> Check | None:
    """One runtime on one case; ``None`` when the case is not run there (noted on the verdict)."""
    if sub.samples_per_shape is not None and index >= sub.samples_per_shape:
        return None
    if REGISTRY.get(name).artifact == "module" and not fits(sub.session, feeds):
        # The lowering fixed a dim the export kept dynamic: this target is static there.
        note = f"{label}: not run, the lowered program is static ({static_dims(sub.session)})"
        if note not in verdict.notes:
            verdict.notes.append(note)
        return None
    try:
        got = sub.session.run(feeds)
    except Exception as exc:  # a runtime's failure on one case is that check's error, not the run's
        return Check(name, label, index, [], 0.0, first_line(exc))
    stats = compare_outputs(
        ref,
        got.outputs,
        tolerances=judge.tolerances,
        default=judge.defaults[name],
        float64=exact,
        precision=sub.session.precision,
        rule=judge.rule,
    )
    stats = [
        replace(s, top1_agreement=top1_agreement(ref[s.name], got.outputs[s.name])) if s.name in judge.classes else s
        for s in stats
    ]
    return Check(name, label, index, stats, got.seconds)


def task_report(
    subject: Subject, sessions: Mapping[str, OpenRuntime], photos: str | os.PathLike[str]
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
