from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.compare import Tolerance, compare_arrays, parse_tolerance
from ferry.errors import UserError
from ferry.samples import shape_variants
from ferry.specs import parse_input_specs
from ferry.verify import VerifyConfig, write_report


def test_superres_passes_at_three_shapes(superres_onnx: Path) -> None:
    report = ferry.verify("zoo:superres", superres_onnx)
    assert report.ok
    assert len(report.shapes) == 3
    assert {tuple(s["input"]) for s in report.shapes} == {(1, 1, 224, 224), (1, 1, 128, 128), (2, 1, 320, 320)}
    data = report.to_dict()
    assert data["ok"] is True
    assert data["backends"]["onnxruntime"]["max_abs_diff"] < 1e-4
    assert data["first_divergence"] is None


def test_frozen_branch_is_caught(tmp_path: Path, tiny) -> None:
    out = tmp_path / "s.onnx"
    ferry.export(tiny("SignBranch"), out, inputs=parse_input_specs(["2,3"]))
    report = ferry.verify(tiny("SignBranch"), out)
    assert not report.ok
    verdict = report.backends["onnxruntime"]
    assert any(c.ok for c in verdict.checks) and not all(c.ok for c in verdict.checks)


def test_model_with_other_weights_fails(tmp_path: Path, tiny) -> None:
    out = tmp_path / "m.onnx"
    ferry.export(tiny("TinyConv"), out, inputs=parse_input_specs(["batch=1,3,8,8"]))
    assert ferry.verify(tiny("TinyConv"), out)
    report = ferry.verify(tiny("TinyConv"), out, args={"channels": 4}, weights=None, config=VerifyConfig(seed=3))
    assert report.ok  # same source, same seed-fixed weights
    other = ferry.load_model(tiny("TinyConv"))
    other.module.head.bias.data += 0.01
    assert not ferry.verify(other, out)


def test_multi_io_with_int_outputs_compared_exactly(tmp_path: Path, tiny) -> None:
    out = tmp_path / "m.onnx"
    ferry.export(tiny("TwoInTwoOut"), out, inputs=parse_input_specs(["batch=2,4", "batch=2,5:int64:0:10"]))
    report = ferry.verify(tiny("TwoInTwoOut"), out)
    assert report.ok
    stats = report.backends["onnxruntime"].worst()
    assert stats["argmax"].rtol is None and stats["argmax"].max_abs_diff == 0
    assert [s["x"][0] for s in report.shapes] == [2, 1, 3]


def test_tolerances() -> None:
    ref = np.array([1.0, 2.0, 3.0], np.float32)
    assert compare_arrays("y", ref, ref + 1e-6, Tolerance(1e-4, 1e-5)).ok
    res = compare_arrays("y", ref, ref + np.array([0, 0, 0.1], np.float32), Tolerance(1e-4, 1e-5))
    assert not res.ok and res.mismatch_fraction == pytest.approx(1 / 3)
    assert "worst at (2,)" in res.problem
    assert not compare_arrays("y", ref, ref[:2], Tolerance(1, 1)).ok
    assert parse_tolerance("out=1e-3,1e-4") == ("out", Tolerance(1e-3, 1e-4))
    with pytest.raises(UserError):
        parse_tolerance("out=1e-3")


def test_shape_variants_cover_batch_and_spatial_dims() -> None:
    specs = parse_input_specs(["batch=1,3,height=224,width=64"])
    variants = shape_variants(specs)
    assert variants[0] == {"batch": 1, "height": 224, "width": 64}
    assert {"batch": 2, "height": 320, "width": 96} in variants
    assert any(v["height"] < 224 for v in variants)
    assert shape_variants(parse_input_specs(["1,3"])) == [{}]


def test_unknown_backend_lists_known(superres_onnx: Path) -> None:
    from ferry.backends import REGISTRY

    assert {"onnxruntime", "reference", "torch", "ort-web", "litert", "mnn", "ncnn"} <= set(REGISTRY.names())
    with pytest.raises(UserError, match="unknown backend 'ort'; known: " + ", ".join(REGISTRY.names())):
        ferry.verify("zoo:superres", superres_onnx, config=VerifyConfig(backends=("ort",)))


def test_html_report_is_self_contained(tmp_path: Path, superres_onnx: Path) -> None:
    report = ferry.verify("zoo:superres", superres_onnx, config=VerifyConfig(samples=1))
    html = write_report(report, tmp_path / "r.html").read_text()
    assert "PASS" in html and "onnxruntime" in html
    assert "http://" not in html and "https://" not in html


def test_verify_on_images_and_array_files(cli, tmp_path: Path, superres_onnx: Path) -> None:
    from PIL import Image

    images = tmp_path / "photos" / "nested"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(images / "a.png")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(images / "b.jpg")
    np.save(tmp_path / "y.npy", rng.random((1, 1, 12, 12), dtype=np.float32))
    res = cli(
        "verify",
        "zoo:superres",
        superres_onnx,
        "--images",
        tmp_path / "photos",
        "--input",
        tmp_path / "y.npy",
        "--samples",
        "1",
        "--json",
        "-",
    )
    assert res.code == 0, res.err
    shapes = json.loads(res.out)["shapes"]
    assert {"input": [1, 1, 20, 30]} in shapes and {"input": [1, 1, 12, 12]} in shapes


def test_images_need_declared_preprocessing(tmp_path: Path, tiny) -> None:
    from ferry.verify import image_data

    with pytest.raises(UserError, match="declares no image preprocessing"):
        image_data(ferry.load_model(tiny("TinyConv")), tmp_path)
    with pytest.raises(UserError, match="no images"):
        image_data(ferry.load_model("zoo:superres"), tmp_path)


def test_broken_exports_are_localized(tmp_path: Path, tiny) -> None:
    import onnx
    import torch

    # 1. Exported in training mode: BatchNorm uses batch statistics.
    model = ferry.load_model(tiny("TinyConv"))
    bad = tmp_path / "train.onnx"
    torch.onnx.export(
        model.module,
        (torch.randn(2, 3, 8, 8),),
        str(bad),
        dynamo=False,
        training=torch.onnx.TrainingMode.TRAINING,
        input_names=["x"],
        output_names=["output"],
    )
    report = ferry.verify(tiny("TinyConv"), bad, inputs=parse_input_specs(["2,3,8,8"]))
    assert not report.ok
    div = report.first_divergence
    assert div is not None
    assert div["op_type"] == "BatchNormalization" and div["module"] == "bn"
    assert "training mode" in div["hint"]

    # 2. A resize mode changed after export: runtimes agree with each other, not with PyTorch.
    good = tmp_path / "up.onnx"
    ferry.export(tiny("UpNet"), good, inputs=parse_input_specs(["1,1,8,8"]))
    proto = onnx.load(str(good))
    for node in proto.graph.node:
        for attr in node.attribute:
            if node.op_type == "Resize" and attr.name == "mode":
                attr.s = b"nearest"
    onnx.save(proto, str(tmp_path / "up_bad.onnx"))
    report = ferry.verify(tiny("UpNet"), tmp_path / "up_bad.onnx")
    div = report.first_divergence
    assert div is not None and div["compared"] == "pytorch vs onnx"
    assert (div["op_type"], div["module"], div["module_class"]) == ("Resize", "up", "Upsample")
    assert "tiny_models.py" in div["source"]


def test_bf16_runtime_divergence_is_localized_to_the_first_conv(superres_onnx: Path) -> None:
    pytest.importorskip("openvino", reason="OpenVINO is an optional runtime: pip install 'ferry[openvino]'")
    cfg = VerifyConfig(backends=("openvino-default",), rtol=1e-5, atol=1e-6, samples=1)
    report = ferry.verify("zoo:superres", superres_onnx, config=cfg)
    if report.backends["openvino-default"].settings["precision"] != "bf16":
        pytest.skip("this CPU runs OpenVINO in f32 by default: nothing to localize")
    div = report.first_divergence
    assert div is not None and div["compared"] == "openvino-default vs onnx reference"
    assert div["op_type"] == "Conv" and div["module"] == "conv1"


def test_bisection_finds_the_same_node_as_exposing_everything(
    tmp_path: Path, superres_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.verify import _localize as localize

    x = {"input": np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)}
    tight = Tolerance(1e-7, 1e-9)
    model = ferry.load_model("zoo:superres").module
    exposed = localize.locate_divergence(superres_onnx, x, backend="onnxruntime", module=model, tolerance=tight)
    monkeypatch.setattr(localize, "EXPOSE_ALL_LIMIT", 0)
    bisected = localize.locate_divergence(superres_onnx, x, backend="onnxruntime", module=model, tolerance=tight)
    assert exposed is not None and bisected is not None
    assert (exposed["node"], exposed["compared"]) == (bisected["node"], bisected["compared"])


def test_report_lists_shapes_readably(tmp_path: Path, superres_onnx: Path) -> None:
    report = ferry.verify("zoo:superres", superres_onnx, config=VerifyConfig(samples=1))
    html = write_report(report, tmp_path / "r.html").read_text()
    assert "input=2x1x320x320" in html and "&amp;#x27;" not in html and "&#x27;input" not in html


def test_photos_are_upscaled_on_every_runtime_and_compared_with_pytorch(tmp_path: Path, superres_onnx: Path) -> None:
    from ferry.superres import datasets

    photos = tmp_path / "photos"
    photos.mkdir()
    datasets.chelsea().crop((150, 60, 246, 132)).save(photos / "cat.png")
    cfg = ferry.VerifyConfig(backends=("onnxruntime", "onnxruntime-noopt"), samples=1)
    report = ferry.verify("zoo:superres", superres_onnx, config=cfg, photos=photos)
    assert report.photos is not None and report.photos.photos == ["cat.png"]
    rows = {t.backend: t for t in report.photos.targets}
    assert set(rows) == {"onnxruntime", "onnxruntime-noopt"}
    for t in rows.values():
        assert t.psnr_vs_pytorch_db > 50 and t.max_pixel_diff <= 1 and t.median_ms > 0
        assert abs(t.psnr_vs_original_db - report.photos.pytorch_psnr_db) < 0.01
        assert t.artifact == superres_onnx.name and t.artifact_bytes == superres_onnx.stat().st_size
    assert report.to_dict()["photos"]["targets"][0]["backend"] == "onnxruntime"
    text = write_report(report, tmp_path / "r.html").read_text()
    assert "on real photos" in text and text.count("<figure>") >= 4  # original, pytorch and 2 runtimes
