from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ferry
from ferry.errors import UserError
from ferry.export import ExportConfig
from ferry.onnx_file import read_metadata
from ferry.specs import parse_input_specs


def _dims(vi: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_zoo_export_has_names_dynamic_axes_and_metadata(superres_onnx: Path) -> None:
    proto = onnx.load(str(superres_onnx))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    assert _dims(proto.graph.input[0]) == ["batch", 1, "height", "width"]
    meta = read_metadata(proto)
    assert meta["exporter"] == "dynamo"
    assert meta["source"] == "zoo:superres"
    assert meta["inputs"][0]["spec"] == "batch=1,1,height=224,width=224"
    assert meta["version"] == ferry.__version__
    # Weights are embedded: one file, no external data.
    assert not any(i.data_location == onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)
    sess = ort.InferenceSession(str(superres_onnx))
    out = sess.run(None, {"input": np.zeros((2, 1, 17, 23), np.float32)})[0]
    assert out.shape == (2, 1, 51, 69)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_multi_io_model_exports_with_each_exporter(tmp_path: Path, tiny, exporter: str) -> None:
    out = tmp_path / "m.onnx"
    res = ferry.export(
        tiny("TwoInTwoOut"),
        out,
        inputs=parse_input_specs(["batch=2,4", "batch=2,5:int64:0:10"]),
        config=ExportConfig(exporter=exporter),  # type: ignore[arg-type]
    )
    assert res.exporter == exporter
    assert res.outputs == ("score", "argmax")
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["x", "ids"]
    assert [o.name for o in proto.graph.output] == ["score", "argmax"]
    assert _dims(proto.graph.input[0])[0] == "batch"
    assert json.loads(next(p.value for p in proto.metadata_props if p.key == "ferry.outputs")) == ["score", "argmax"]


def test_auto_falls_back_to_torchscript_and_says_why(tmp_path: Path, tiny) -> None:
    res = ferry.export(tiny("SignBranch"), tmp_path / "s.onnx", inputs=parse_input_specs(["2,3"]))
    assert res.exporter == "torchscript"
    assert res.fallback_reason and "data-dependent" in res.fallback_reason
    assert any("trace might not generalize" in w for w in res.warnings)


def test_forced_dynamo_failure_is_a_user_error_and_writes_nothing(tmp_path: Path, tiny) -> None:
    out = tmp_path / "s.onnx"
    with pytest.raises(UserError, match="dynamo exporter"):
        ferry.export(tiny("SignBranch"), out, inputs=parse_input_specs(["2,3"]), config=ExportConfig(exporter="dynamo"))
    assert list(tmp_path.iterdir()) == []


def test_no_constant_folding_and_opset(tmp_path: Path, tiny) -> None:
    out = tmp_path / "m.onnx"
    res = ferry.export(
        tiny("TinyConv"),
        out,
        inputs=parse_input_specs(["1,3,8,8"]),
        config=ExportConfig(opset=17, exporter="torchscript", constant_folding=False),
    )
    assert res.opset == 17
    assert onnx.load(str(out)).opset_import[0].version == 17


def test_bad_export_arguments(tmp_path: Path, tiny) -> None:
    with pytest.raises(UserError, match=r"must end in \.onnx"):
        ferry.export("zoo:superres", tmp_path / "x.txt")
    with pytest.raises(UserError, match="opset"):
        ferry.export("zoo:superres", tmp_path / "x.onnx", config=ExportConfig(opset=99))
    with pytest.raises(UserError, match="failed on example inputs"):
        ferry.export(tiny("TinyConv"), tmp_path / "x.onnx", inputs=parse_input_specs(["1,5,8,8"]))
    assert list(tmp_path.iterdir()) == []


def test_external_data_format(tmp_path: Path, tiny) -> None:
    out = tmp_path / "m.onnx"
    res = ferry.export(
        tiny("TinyConv"), out, inputs=parse_input_specs(["1,3,8,8"]), config=ExportConfig(external_data=True)
    )
    assert res.external_data
    assert (tmp_path / "m.onnx.data").is_file()
    assert ferry.check(out)
    x = np.ones((1, 3, 8, 8), np.float32)
    assert ferry.run(out, {"x": x}).outputs["output"].shape == (1, 2, 8, 8)
