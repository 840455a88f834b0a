from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

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


class BatchVsOne(nn.Module):
    """Compares the batch with a size-1 tensor's, as transformers' mask code does: torch.export
    pins a batch of example size 1 to 1 (a file with a static batch) unless traced larger."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1]).unsqueeze(0)
        if x.shape[0] != pos.shape[0]:
            pos = pos.expand(x.shape[0], -1)
        return x + pos


class PinnedLength(nn.Module):
    """Reshapes to a fixed size: the length can only ever be 16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 2).view(x.shape[0], 4, 4)


class Diff(nn.Module):
    """An operator the TorchScript exporter does not know (it dumps its IR graph from C++)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.diff(x, dim=1)


def test_a_size_one_dim_is_traced_larger_and_stays_dynamic(tmp_path: Path) -> None:
    out = tmp_path / "b.onnx"
    res = ferry.export(BatchVsOne(), out, inputs=parse_input_specs(["batch=1,4"]))
    assert _dims(onnx.load(str(out)).graph.input[0]) == ["batch", 4]
    # The result says what the file has, and why it was traced at another size.
    assert res.graph_inputs[0].shape == ("batch", 4)
    assert res.inputs[0].dynamic_axes == {0: "batch"} and res.inputs[0].shape == (1, 4)
    assert len(res.notes) == 1 and "traced with batch=2" in res.notes[0]
    assert "if x.shape[0] != pos.shape[0]:" in res.notes[0]
    sess = ort.InferenceSession(str(out))
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x + np.arange(4))
    assert ferry.verify(BatchVsOne(), out, config=ferry.VerifyConfig(samples=1))


def test_a_dim_the_code_pins_is_refused_with_the_line_that_pins_it(tmp_path: Path, capfd) -> None:
    with pytest.raises(UserError) as info:
        ferry.export(PinnedLength(), tmp_path / "p.onnx", inputs=parse_input_specs(["batch=2,seq=16"]))
    msg = str(info.value)
    assert "dim 'seq' (axis 1 of x) came out static, size 16" in msg
    assert "test_export.py" in msg and "view(x.shape[0], 4, 4)" in msg and "\n" not in msg
    # No TorchScript file claiming a dynamic length it cannot take.
    assert list(tmp_path.iterdir()) == []
    # Exported static, as the refusal suggests, it works.
    ferry.export(PinnedLength(), tmp_path / "p.onnx", inputs=parse_input_specs(["batch=2,16"]))
    assert capfd.readouterr().err == ""


def test_the_fallback_reason_is_one_line_with_the_models_frame(tmp_path: Path, tiny, capfd) -> None:
    log = tmp_path / "export.log"
    res = ferry.export(
        tiny("SignBranch"), tmp_path / "s.onnx", inputs=parse_input_specs(["2,3"]), config=ExportConfig(log=log)
    )
    assert res.exporter == "torchscript" and res.fallback_reason
    assert "\n" not in res.fallback_reason and len(res.fallback_reason) < 400
    assert "tiny_models.py:40 in forward: `if x.sum() > 0:`" in res.fallback_reason
    # The exporters' chatter stays off the terminal; the whole story is in the log file.
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    text = log.read_text()
    assert res.log == log and "Traceback" in text and "GuardOnDataDependentSymNode" in text


def test_torchscripts_ir_dump_goes_to_the_log_not_the_terminal(tmp_path: Path, capfd) -> None:
    log = tmp_path / "export.log"
    cfg = ExportConfig(exporter="torchscript", log=log)
    with pytest.raises(UserError, match=r"aten::diff.*full output is in"):
        ferry.export(Diff(), tmp_path / "d.onnx", inputs=parse_input_specs(["2,4"]), config=cfg)
    captured = capfd.readouterr()
    assert "Torch IR graph" not in captured.out + captured.err
    assert "Torch IR graph" in log.read_text()
