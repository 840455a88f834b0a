from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import ferry
from ferry.errors import UserError
from ferry.specs import parse_input_specs


def test_check_valid(superres_onnx: Path) -> None:
    res = ferry.check(superres_onnx)
    assert res.valid and bool(res)
    assert res.opsets == {"ai.onnx": 18}
    assert res.inferred_tensors > 0


def test_check_invalid_graph_reports_the_checker_message(tmp_path: Path, superres_onnx: Path) -> None:
    proto = onnx.load(str(superres_onnx))
    proto.graph.node[0].input[0] = "nonexistent"
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    res = ferry.check(bad)
    assert not res
    assert "nonexistent" in res.message


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "c.onnx"
    corrupt.write_bytes(b"\x00\x01garbage")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        ferry.check(corrupt)
    with pytest.raises(UserError, match="not found"):
        ferry.check(tmp_path / "missing.onnx")


def test_inspect_superres(superres_onnx: Path) -> None:
    info = ferry.inspect_model(superres_onnx, graph=True)
    assert info.ops == {"Conv": 4, "Relu": 3, "DepthToSpace": 1}
    assert info.parameters == 64 * 25 + 64 + 64 * 64 * 9 + 64 + 32 * 64 * 9 + 32 + 9 * 32 * 9 + 9
    assert info.parameter_bytes == 4 * info.parameters
    assert info.inputs[0].shape == ("batch", 1, "height", "width")
    # FLOPs at the stored export shape 1x1x224x224: 2 * MACs of the four convs, plus biases and ReLUs.
    macs = 224 * 224 * (64 * 25 + 64 * 64 * 9 + 32 * 64 * 9 + 9 * 32 * 9)
    assert info.flops is not None
    assert info.flops.by_op["Conv"] == 2 * macs + 224 * 224 * (64 + 64 + 32 + 9)
    assert "%input" in info.graph and "Conv" in info.graph


def test_inspect_flops_scale_with_the_given_shape(superres_onnx: Path) -> None:
    small = ferry.inspect_model(superres_onnx, inputs=parse_input_specs(["1,1,100,100"]))
    big = ferry.inspect_model(superres_onnx, inputs=parse_input_specs(["2,1,100,100"]))
    assert small.flops and big.flops
    assert big.flops.total == 2 * small.flops.total
