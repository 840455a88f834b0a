"""Every backend names its outputs after the model's (the ONNX graph's outputs, or the module's
flattened outputs), by position: never after a name the runtime picked for the tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

import ferry
from ferry.backends import REGISTRY
from ferry.specs import parse_input_spec, parse_input_specs

ONNX_BACKENDS = [n for n in REGISTRY.names() if REGISTRY.get(n).artifact == "onnx"]
MODULE_BACKENDS = [n for n in REGISTRY.names() if REGISTRY.get(n).artifact == "module"]


def _merged_names_onnx(path: Path) -> Path:
    """``last_hidden_state`` is an Identity of ``/enc/Mul_output_0``, which also feeds ``z``:
    OpenVINO gives the merged tensor both names and calls it by the intermediate's."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("last_hidden_state", "z")]
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["/enc/Mul_output_0"], name="/enc/Mul"),
        helper.make_node("Identity", ["/enc/Mul_output_0"], ["last_hidden_state"]),
        helper.make_node("Add", ["/enc/Mul_output_0", "x"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "merged", [x], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # ort-web reads <= 13
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("backend", ONNX_BACKENDS)
def test_onnx_backends_name_outputs_after_the_graph(backend: str, tmp_path: Path) -> None:
    if not REGISTRY.get(backend).available():
        pytest.skip(f"{backend} is not installed: pip install 'ferry[{REGISTRY.get(backend).extra}]'")
    session = REGISTRY.get(backend).load(str(_merged_names_onnx(tmp_path / "m.onnx")))
    assert [o.name for o in session.outputs] == ["last_hidden_state", "z"]
    x = np.full((2, 3), 2.0, np.float32)
    out = session.run({"x": x}).outputs
    assert list(out) == ["last_hidden_state", "z"]
    np.testing.assert_allclose(out["last_hidden_state"], x * x)
    np.testing.assert_allclose(out["z"], x * x + x)


class LaterFirst(nn.Module):
    """The first output is computed from the third, which feeds another layer: runtimes that list
    outputs in graph order (ncnn) see them as a, b, c."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 5, 1), nn.Conv2d(3, 6, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self.c1(x)
        return self.c2(a), self.c3(x), a


@pytest.mark.parametrize("backend", MODULE_BACKENDS)
def test_module_backends_keep_the_order_of_the_outputs(backend: str) -> None:
    if not REGISTRY.get(backend).available():
        pytest.skip(f"{backend} is not installed: pip install 'ferry[{REGISTRY.get(backend).extra}]'")
    torch.manual_seed(0)
    module = LaterFirst().eval()
    specs = [parse_input_spec("1,3,4,4").with_name("x")]
    session = REGISTRY.get(backend).load(module, inputs=specs, outputs=["b", "c", "a"])
    x = np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32)
    out = session.run({"x": x}).outputs
    with torch.inference_mode():
        want = [t.numpy() for t in module(torch.from_numpy(x))]
    for name, ref in zip(["b", "c", "a"], want, strict=True):
        np.testing.assert_allclose(out[name], ref, atol=1e-5, err_msg=f"{backend}: output {name}")


@pytest.mark.slow  # a tiny T5 encoder exports in ~10 s (through the TorchScript fallback)
def test_openvino_reads_the_t5_encoders_output_under_its_name(tmp_path: Path) -> None:
    if not REGISTRY.get("openvino").available():
        pytest.skip("OpenVINO is not installed: pip install 'ferry[openvino]'")
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2, relative_attention_num_buckets=8
    )
    model = ferry.load_model(T5EncoderModel(config).eval())
    path = tmp_path / "t5.onnx"
    ferry.export(model, path, inputs=parse_input_specs(["batch=2,seq=8:int64:0:64"]))
    session = REGISTRY.get("openvino").load(str(path))
    assert [o.name for o in session.outputs] == ["last_hidden_state"]
    ids = np.random.default_rng(0).integers(0, 64, (2, 8), dtype=np.int64)
    out = session.run({"input_ids": ids}).outputs["last_hidden_state"]
    ref = REGISTRY.get("onnxruntime").load(str(path)).run({"input_ids": ids}).outputs["last_hidden_state"]
    np.testing.assert_allclose(out, ref, atol=1e-4)
