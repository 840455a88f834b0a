"""ferry in your own test suite: fail a test when a model stops being deployable.

:func:`assert_deployable` exports a model, verifies it on the runtimes you ship to, and raises
:class:`AssertionError` with the verification table as its message when any of them differs from
PyTorch (or errors, or refuses the model)::

    from ferry.testing import assert_deployable

    def test_my_model_runs_on_onnxruntime_and_openvino(tmp_path):
        assert_deployable(MyModel(), ["batch=2,3,224,224"], backends=("onnxruntime", "openvino"),
                          workdir=tmp_path)

Installed with ferry, this module is also a pytest plugin (entry point ``pytest11``): the
``ferry_deployable`` fixture is :func:`assert_deployable` with ``workdir`` set to the test's
``tmp_path``. Importing it is cheap (torch is imported on the first call).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from ferry.models import LoadedModel
    from ferry.specs import InputSpec
    from ferry.verify import VerifyReport

__all__ = ["assert_deployable", "ferry_deployable"]


def assert_deployable(
    model: str | nn.Module | LoadedModel,
    inputs: Sequence[str | InputSpec] | None = None,
    *,
    backends: Sequence[str] = ("onnxruntime",),
    samples: int = 3,
    seed: int = 0,
    judge: str = "noise",
    rtol: float | None = None,
    atol: float | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    onnx_path: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> VerifyReport:
    """Export ``model`` and verify it; raise ``AssertionError`` with the parity table if it fails.

    Args:
        model: a source string (``zoo:NAME``, ``file.py:Class``), an ``nn.Module`` or a LoadedModel.
        inputs: one spec per ``forward`` argument (``"batch=2,3,224,224"`` or :class:`InputSpec`);
            optional for models that declare theirs.
        backends: the runtimes the model must run on (``("all",)``: every installed one).
        samples: random samples per input shape.
        seed: seed for the samples.
        judge: ``"noise"`` (against PyTorch in float64) or ``"tolerance"`` (``rtol``/``atol``).
        rtol: relative tolerance (implies ``judge="tolerance"``).
        atol: absolute tolerance (implies ``judge="tolerance"``).
        args: constructor keyword arguments for a source string.
        weights: a state dict file to load first.
        onnx_path: verify this file instead of exporting (it must come from ``model``).
        workdir: where the exported file is kept (default: a temporary folder, removed after).

    Returns:
        The passing :class:`~ferry.verify.VerifyReport`.

    Raises:
        AssertionError: a runtime's outputs differ from PyTorch's, it raised, or it refused the model.
    """
    from ferry.export import export
    from ferry.specs import parse_input_specs
    from ferry.verify import VerifyConfig, summary_text, verify

    specs: list[InputSpec] | None = None
    if inputs is not None:
        texts = [s for s in inputs if isinstance(s, str)]
        parsed = iter(parse_input_specs(texts)) if texts else iter(())
        specs = [next(parsed) if isinstance(s, str) else s for s in inputs]
    cfg = VerifyConfig(backends=tuple(backends), samples=samples, seed=seed, judge=judge, rtol=rtol, atol=atol)
    with tempfile.TemporaryDirectory(prefix="ferry-") as scratch:
        path = Path(onnx_path) if onnx_path is not None else Path(workdir or scratch) / "model.onnx"
        if onnx_path is None:
            export(model, path, inputs=specs, args=args, weights=weights)
        report = verify(model, path, inputs=specs, args=args, weights=weights, config=cfg)
    if not report.ok:
        raise AssertionError(f"{report.source} is not deployable on {', '.join(backends)}:\n{summary_text(report)}")
    return report


try:  # the plugin half: only under pytest
    import pytest
except ImportError:  # pragma: no cover - ferry.testing without pytest: the function still works
    pass
else:

    @pytest.fixture
    def ferry_deployable(tmp_path: Path) -> Callable[..., VerifyReport]:
        """:func:`assert_deployable` that keeps the exported file in the test's ``tmp_path``."""

        def check(model: Any, inputs: Sequence[Any] | None = None, **options: Any) -> VerifyReport:
            options.setdefault("workdir", tmp_path)
            return assert_deployable(model, inputs, **options)

        return check
