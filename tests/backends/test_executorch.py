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
    not REGISTRY.get("executorch").available(), reason="executorch is not installed: pip install 'ferry[executorch]'"
)


def test_lowered_program_runs_dynamic_shapes_and_loads_from_a_pte(tmp_path: Path) -> None:
    from ferry.convert.executorch import delegated_ops
    from ferry.convert.executorch import pte_from_module as lower

    model = ferry.load_model("zoo:superres")
    specs = [parse_input_spec("batch=1,1,height=16,width=16").with_name("input")]
    lowered = lower(model.module, specs)
    assert lowered.dynamic == [{0, 2, 3}]
    assert delegated_ops(lowered.program)["delegate_calls"] >= 1  # the convolutions run in XNNPACK
    pte = tmp_path / "sr.pte"
    pte.write_bytes(lowered.program)
    session = REGISTRY.get("executorch").load(pte, inputs=specs, outputs=["output"])
    for shape in [(1, 1, 16, 16), (2, 1, 20, 12)]:  # batch and spatial dims stay dynamic
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        out = session.run({"input": x}).outputs["output"]
        ref = ferry.backends.get_backend("torch").load(model.module, inputs=session.inputs, outputs=["output"])
        np.testing.assert_allclose(out, ref.run({"input": x}).outputs["output"], atol=1e-4)


def test_a_model_executorch_cannot_take_is_named_and_does_not_fail_all(
    tmp_path: Path, tiny: Callable[[str], str]
) -> None:
    path = tmp_path / "sign.onnx"
    source = tiny("SignBranch")
    ferry.export(source, path, inputs=[parse_input_spec("2,3")])  # auto: TorchScript fallback
    # Named, its refusal is a row that fails the run (the user asked for this runtime), with the reason.
    named = ferry.verify(
        source, path, inputs=[parse_input_spec("2,3")], config=ferry.VerifyConfig(backends=("executorch",))
    )
    verdict = named.backends["executorch"]
    assert (verdict.status, verdict.gating, named.ok) == ("refused", True, False)
    assert "ExecuTorch cannot lower the model" in verdict.refused
    report = ferry.verify(
        tiny("TinyConv"), _tiny_conv(tmp_path, tiny), config=ferry.VerifyConfig(backends=("onnxruntime", "executorch"))
    )
    assert report.backends["executorch"].ok and report.backends["executorch"].gating


def _tiny_conv(tmp_path: Path, tiny: Callable[[str], str]) -> Path:
    path = tmp_path / "conv.onnx"
    ferry.export(tiny("TinyConv"), path, inputs=[parse_input_spec("batch=1,3,8,8")])
    return path


def test_bench_times_executorch_beside_the_onnx_runtimes(superres_onnx: Path) -> None:
    cfg = ferry.BenchConfig(backends=("torch", "executorch"), inputs=(parse_input_spec("1x1x32x32"),), seconds=0.05)
    report = ferry.bench(superres_onnx, model="zoo:superres", config=cfg)
    assert report and {r.backend for r in report.rows} == {"torch", "executorch"}
    with pytest.raises(UserError, match="executorch needs the PyTorch model"):
        ferry.bench(superres_onnx, config=ferry.BenchConfig(backends=("executorch",), seconds=0.05))
