from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

import ferry
from ferry.errors import UserError, VerificationError
from ferry.onnx_file import read_metadata
from ferry.optimize import OptimizeConfig, optimize, refuse
from ferry.specs import parse_input_spec


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(path).graph.node}


def test_graph_optimization_keeps_parity_and_metadata(superres_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "opt.onnx"
    result = optimize(superres_onnx, out)
    assert result and result.written and out.is_file()
    assert result.steps == ["onnxslim", "onnxruntime-extended"]
    assert sum(result.ops_after.values()) <= sum(result.ops_before.values())
    assert result.gate.metric == "psnr_drop_db" and abs(result.gate.value) < 1e-3
    meta = read_metadata(onnx.load(out))
    assert meta["task"]["preprocess"] == "y" and meta["source"] == "zoo:superres" and "optimized" in meta


def test_int8_superres_calibrates_on_bundled_photos_and_passes_the_psnr_gate(
    superres_onnx: Path, tmp_path: Path
) -> None:
    out = tmp_path / "int8.onnx"
    result = optimize(superres_onnx, out, OptimizeConfig(quantize="int8"))
    assert result, result.gate.describe()
    assert "QuantizeLinear" in _ops(out) and result.kept_float  # the output conv stays float
    assert 0 <= result.gate.value <= 0.1 and result.compared_on == "bundled photos"
    assert result.size_after < result.size_before / 2
    d = result.to_dict()
    assert d["gate"]["psnr_original_db"] > d["gate"]["psnr_optimized_db"] > 25


def test_a_model_below_the_gate_is_refused_and_not_written(superres_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.onnx"
    strict = OptimizeConfig(quantize="int8", keep_float=(), max_psnr_drop=0.0001, calibration_samples=8)
    result = optimize(superres_onnx, out, strict)
    assert not result and not result.written and not out.exists()
    with pytest.raises(VerificationError, match="not written"):
        refuse(result)
    forced = optimize(superres_onnx, out, OptimizeConfig(**{**strict.__dict__, "force": True}))
    assert not forced and forced.written and out.is_file()


def test_int8_from_npy_calibration_and_fp16_use_the_cosine_gate(tmp_path: Path, tiny: Callable[[str], str]) -> None:
    model = tmp_path / "tiny.onnx"
    ferry.export(tiny("UpNet"), model, inputs=[parse_input_spec("batch=1,1,height=16,width=16")])
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        np.save(calib / f"s{k}.npy", rng.random((1, 1, 16, 16), dtype=np.float32))
    int8 = optimize(model, tmp_path / "int8.onnx", OptimizeConfig(quantize="int8", calibration=calib))
    assert int8.gate.metric == "cosine_similarity" and int8.compared_on == "calibration samples"
    assert int8, int8.gate.describe()
    fp16 = optimize(model, tmp_path / "fp16.onnx", OptimizeConfig(quantize="fp16"))
    assert fp16 and fp16.gate.limit == 0.999
    graph = onnx.load(tmp_path / "fp16.onnx").graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O kept
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)


def test_images_need_stored_preprocessing(tmp_path: Path, tiny: Callable[[str], str]) -> None:
    from PIL import Image

    model = tmp_path / "tiny.onnx"
    ferry.export(tiny("UpNet"), model, inputs=[parse_input_spec("batch=1,1,height=16,width=16")])
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(photos / "a.png")
    with pytest.raises(UserError, match="no stored preprocessing"):
        optimize(model, tmp_path / "o.onnx", OptimizeConfig(quantize="int8", calibration=photos))
    with pytest.raises(UserError, match="needs --calibration"):
        optimize(model, tmp_path / "o.onnx", OptimizeConfig(quantize="int8"))


@pytest.mark.parametrize(
    ("kwargs", "out", "fragment"),
    [
        ({"quantize": "int4"}, "o.onnx", "unknown --quantize"),
        ({"method": "mse"}, "o.onnx", "unknown --method"),
        ({"level": "all"}, "o.onnx", "unknown --level"),
        ({}, "o.txt", "must be an .onnx"),
        ({"keep_float": ("nope",)}, "o.onnx", "not in the graph"),
    ],
)
def test_bad_arguments_are_explained(
    superres_onnx: Path, tmp_path: Path, kwargs: dict[str, object], out: str, fragment: str
) -> None:
    cfg = OptimizeConfig(**{"quantize": "int8", **kwargs} if "keep_float" in kwargs else kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=fragment):
        optimize(superres_onnx, tmp_path / out, cfg)
    with pytest.raises(UserError, match="overwrite the input"):
        optimize(superres_onnx, superres_onnx)


def test_optimize_cli_exit_codes(cli: Callable[..., object], superres_onnx: Path, tmp_path: Path) -> None:
    ok = cli("optimize", superres_onnx, "-o", tmp_path / "a.onnx")
    assert ok.code == 0 and "PASS" in ok.out  # type: ignore[attr-defined]
    bad = cli(
        "optimize", superres_onnx, "-o", tmp_path / "b.onnx", "--quantize", "int8", "--keep-float", "none",
        "--max-psnr-drop", "0.0001",
    )  # fmt: skip
    assert bad.code == 2 and "fails the gate" in bad.err and not (tmp_path / "b.onnx").exists()  # type: ignore[attr-defined]
