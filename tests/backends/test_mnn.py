from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.backends import REGISTRY
from ferry.errors import UserError
from ferry.specs import parse_input_spec

pytestmark = pytest.mark.skipif(
    not REGISTRY.get("mnn").available(), reason="MNN is not installed: pip install 'ferry[mnn]'"
)


def test_mnn_runs_dynamic_shapes_at_fp32(superres_onnx: Path) -> None:
    session = REGISTRY.get("mnn").load(superres_onnx)
    ort = REGISTRY.get("onnxruntime").load(superres_onnx)
    for shape in [(1, 1, 32, 32), (2, 1, 20, 12)]:  # batch and spatial dims stay dynamic
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        got = session.run({"input": x}).outputs["output"]
        np.testing.assert_allclose(got, ort.run({"input": x}).outputs["output"], atol=2e-5)
    assert session.settings["winograd"].startswith("limited")


def test_a_file_mnn_cannot_convert_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="MNN cannot convert the model"):
        REGISTRY.get("mnn").load(bad)


def test_mnn_tools_are_never_imported(superres_onnx: Path) -> None:
    """MNN.tools sends telemetry and pip-installs a package on import: ferry must not touch it."""
    code = (
        "import sys, ferry; from ferry.backends import REGISTRY; "
        f"REGISTRY.get('mnn').load({str(superres_onnx)!r}); "
        "ferry.package('zoo:superres', sys.argv[1], 'mnn'); "
        "assert not [m for m in sys.modules if m.startswith('MNN.tools')], 'MNN.tools imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(superres_onnx.parent / "mnn-pkg")], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-500:]


def test_verify_on_mnn_covers_several_shapes(tiny: Callable[[str], str], tmp_path: Path) -> None:
    path, specs = tmp_path / "conv.onnx", [parse_input_spec("batch=1,3,height=8,width=8")]
    ferry.export(tiny("TinyConv"), path, inputs=specs)
    report = ferry.verify(tiny("TinyConv"), path, inputs=specs, config=ferry.VerifyConfig(backends=("mnn",)))
    row = report.to_dict()["backends"]["mnn"]
    assert report and row["checks"] >= 3 and not row["notes"], row
