"""The shipped zoo:superres weights against the validation photos (never used in training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ferry
from ferry import load_model
from ferry.superres import datasets, imaging
from ferry.superres.pipeline import super_resolve, torch_runner
from ferry.superres.scoring import evaluate
from ferry.zoo import SUPERRES_SCALES


def test_shipped_weights_beat_bicubic_by_1_5_db() -> None:
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    model = load_model("zoo:superres")
    ev = evaluate(torch_runner(model.module), datasets.validation_images(), scale=3, border=3)
    assert [s.name for s in ev.images] == ["chelsea", "coffee", "monarch"]
    assert ev.mean_gain >= 1.5, ev.to_dict()
    assert all(s.gain > 0.5 for s in ev.images)


def test_the_stronger_model_beats_espcn_on_every_photo_as_its_card_says() -> None:
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    from ferry import zoo

    photos = datasets.validation_images()
    edsr = evaluate(torch_runner(load_model("zoo:superres_edsr").module), photos, scale=3, border=3)
    espcn = evaluate(torch_runner(load_model("zoo:superres").module), photos, scale=3, border=3)
    card = zoo.get("superres_edsr").card()
    assert abs(edsr.mean_gain - card["validation"]["mean_gain_db"]) < 1e-3  # the card is reproducible
    assert edsr.mean_gain >= 2.3 and edsr.mean_gain > espcn.mean_gain + 0.4  # issue 4's x3 target
    assert all(a.psnr_model > b.psnr_model for a, b in zip(edsr.images, espcn.images, strict=True))
    assert card["trained_by"] == "ferry train superres --arch edsr --loss l1"


def test_pipeline_sizes_and_colour() -> None:
    img = Image.new("RGB", (10, 7), (200, 30, 60))
    out = super_resolve(img, lambda y: np.repeat(np.repeat(y, 3, axis=2), 3, axis=3))
    assert out.size == (30, 21)
    # A flat colour survives YCbCr split, nearest upscale and merge within rounding.
    assert np.abs(np.asarray(out, np.int16) - np.array([200, 30, 60])).max() <= 2


def test_psnr() -> None:
    a = np.zeros((8, 8))
    assert imaging.psnr(a, a) == float("inf")
    assert imaging.psnr(a, a + 255 * 0.1) == pytest.approx(20.0)
    b = a.copy()
    b[0, 0] = 255
    assert imaging.psnr(a, b, border=1) == float("inf")


def test_shipped_weights_reproduce_the_stored_reference_output(superres_onnx) -> None:
    """A 32x32 crop of the cat's face and its output, stored when the weights were shipped."""
    from pathlib import Path

    import torch

    import ferry

    with np.load(Path(__file__).with_name("data") / "superres_x3_reference.npz") as ref:
        x, expected = ref["input"], ref["output"]
    with torch.inference_mode():
        eager = ferry.load_model("zoo:superres").module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(eager, expected, rtol=0, atol=1e-5)
    onnx_out = ferry.run(superres_onnx, {"input": x}).outputs["output"]
    np.testing.assert_allclose(onnx_out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", sorted(SUPERRES_SCALES))
def test_every_shipped_scale_beats_bicubic_and_has_a_card(scale: int) -> None:
    from ferry import zoo

    entry = zoo.get(zoo.superres_name(scale))
    card = entry.card()
    assert card["scale"] == scale and card["validation"]["mean_gain_db"] > 1.0
    assert card["training_seconds"] > 0 and "chelsea" not in json.dumps(card["training_data"])
    model = ferry.load_model(f"zoo:{entry.name}")
    assert model.task["scale"] == scale
    x = np.zeros((1, 1, 8, 10), np.float32)
    assert model.module(torch.from_numpy(x)).shape == (1, 1, 8 * scale, 10 * scale)


def test_upscale_scale_option_picks_the_zoo_model(tmp_path: Path) -> None:
    from PIL import Image

    from ferry.errors import UserError
    from ferry.superres.upscale import UpscaleConfig

    Image.new("RGB", (12, 10), (90, 120, 200)).save(tmp_path / "p.png")
    for scale in sorted(SUPERRES_SCALES):
        res = ferry.upscale(tmp_path / "p.png", tmp_path / f"o{scale}.png", UpscaleConfig(scale=scale, backend="torch"))
        assert res.scale == scale and res.files[0].size == (12 * scale, 10 * scale)
    with pytest.raises(UserError, match="upscales x2, not x3"):
        ferry.upscale(tmp_path / "p.png", tmp_path / "x.png", UpscaleConfig(model="zoo:superres_x2", scale=3))
    with pytest.raises(UserError, match="the zoo has x2, x3, x4"):
        ferry.upscale(tmp_path / "p.png", tmp_path / "x.png", UpscaleConfig(scale=5))


def test_a_static_shape_model_runs_any_plane_in_fixed_windows() -> None:
    from ferry.superres.runners import tiled, torch_runner
    from ferry.zoo import get

    model = torch_runner(get("superres").build())
    seen: list[tuple[int, ...]] = []

    def static(y: np.ndarray) -> np.ndarray:
        seen.append(y.shape)
        return model(y)

    cat = datasets.validation_images()[0][1].convert("L").crop((150, 80, 195, 150))  # 45x70 of a photo
    y = (np.asarray(cat, np.float32) / 255)[None, None]
    out = tiled(static, (32, 32), 8, fixed=True)(y)
    whole = model(y)
    assert out.shape == whole.shape and set(seen) == {(1, 1, 32, 32)}
    inner = (slice(None), slice(None), slice(18, -18), slice(18, -18))  # beyond the receptive radius x3
    np.testing.assert_allclose(out[inner], whole[inner], atol=1e-5)  # seamless inside
    assert np.abs(out - whole).max() < 0.1  # the border differs a little (edge vs zero padding)
