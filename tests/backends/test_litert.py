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
    not REGISTRY.get("litert").available(), reason="litert-torch is not installed: pip install 'ferry[litert]'"
)


def test_converted_program_is_static_and_matches_eager(tmp_path: Path) -> None:
    from ferry.convert.litert import tflite_from_module as convert

    model = ferry.load_model("zoo:superres")
    specs = [parse_input_spec("batch=1,1,height=24,width=16").with_name("input")]
    flat = convert(model.module, specs)
    (tmp_path / "sr.tflite").write_bytes(flat)
    session = REGISTRY.get("litert").load(tmp_path / "sr.tflite", inputs=specs, outputs=["output"])
    assert [i.shape for i in session.inputs] == [(1, 1, 24, 16)] and session.inputs[0].name == "input"
    x = np.random.default_rng(0).random((1, 1, 24, 16), dtype=np.float32)
    import torch

    with torch.inference_mode():
        ref = model.module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run({"input": x}).outputs["output"], ref, atol=1e-4)
    with pytest.raises(UserError, match="axis 2, expected 24"):  # static: other sizes are refused
        session.run({"input": np.zeros((1, 1, 32, 16), np.float32)})


def test_verify_lists_the_shapes_a_static_program_cannot_take(superres_onnx: Path) -> None:
    report = ferry.verify("zoo:superres", superres_onnx, config=ferry.VerifyConfig(backends=("litert",)))
    row = report.to_dict()["backends"]["litert"]
    assert report and row["checks"] >= 1
    assert row["notes"] and all("not run, the lowered program is static" in n for n in row["notes"])


def test_a_model_litert_cannot_convert_is_named(tiny: Callable[[str], str], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="LiteRT cannot convert the model"):
        ferry.package(tiny("SignBranch"), tmp_path / "q", "litert", inputs=[parse_input_spec("2,3")])
    assert not (tmp_path / "q").exists()


def test_photos_on_a_static_target_are_converted_at_each_photo_size(superres_onnx: Path, tmp_path: Path) -> None:
    from PIL import Image
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.chelsea()).crop((100, 50, 196, 122)).save(photos / "eye.png")  # 96x72 -> 32x24
    Image.fromarray(data.astronaut()).crop((0, 0, 60, 90)).save(photos / "face.png")
    report = ferry.verify("zoo:superres", superres_onnx, config=ferry.VerifyConfig(backends=("litert",)), photos=photos)
    assert report.photos is not None
    row = report.photos.targets[0]
    assert row.backend == "litert" and row.note == "static shapes: converted at each photo's size"
    assert row.psnr_vs_pytorch_db > 80 and row.max_pixel_diff <= 1 and row.artifact == "model.tflite"
