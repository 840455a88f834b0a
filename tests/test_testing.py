"""ferry.testing: the pytest plugin users put in their own CI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ferry.testing import assert_deployable


def test_the_fixture_exports_and_verifies_in_tmp_path(ferry_deployable: Callable[..., Any], tiny: Any, tmp_path: Path) -> None:  # fmt: skip
    # The fixture comes from the pytest11 entry point, as in a user's project.
    report = ferry_deployable(tiny("TinyConv"), ["batch=2,3,height=16,width=16"])
    assert report.ok and (tmp_path / "model.onnx").is_file()
    assert len(report.shapes) == 3  # dynamic dims are checked at more than the export shape


def test_a_model_that_does_not_export_faithfully_fails_with_the_table(tiny: Any) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_deployable(tiny("SignBranch"), ["2,3"])  # tracing freezes one branch of an if
    message = str(caught.value)
    assert "is not deployable on onnxruntime" in message
    assert "error vs float64" in message and "FAIL" in message
