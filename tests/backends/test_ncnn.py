from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.backends import REGISTRY
from ferry.errors import UserError
from ferry.specs import parse_input_spec

pytestmark = pytest.mark.skipif(
    not REGISTRY.get("ncnn").available(), reason="ncnn/pnnx are not installed: pip install 'ferry[ncnn]'"
)


def test_ncnn_keeps_height_and_width_dynamic_and_runs_a_batch(superres_onnx: Path) -> None:
    model = ferry.load_model("zoo:superres")
    specs = [parse_input_spec("batch=1,1,height=24,width=16").with_name("input")]
    session = REGISTRY.get("ncnn").load(model.module, inputs=specs, outputs=["output"])
    ort = REGISTRY.get("onnxruntime").load(superres_onnx)
    for shape in [(1, 1, 24, 16), (2, 1, 30, 20)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        got = session.run({"input": x}).outputs["output"]
        np.testing.assert_allclose(got, ort.run({"input": x}).outputs["output"], atol=1e-4)
    assert session.settings["winograd"] is False and session.settings["fp16_storage"] is False


def test_models_the_adapter_cannot_take_are_named(tiny: Callable[[str], str], tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"ncnn cannot take the model: .* x is float32\[2,3\]"):
        ferry.package(tiny("SignBranch"), tmp_path / "q", "ncnn", inputs=[parse_input_spec("2,3")])
    assert not (tmp_path / "q").exists()
