"""The shipped zoo:superres weights against the validation photos (never used in training)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ferry import datasets, imaging, load_model
from ferry.superres import evaluate, super_resolve, torch_runner


def test_shipped_weights_beat_bicubic_by_1_5_db() -> None:
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    model = load_model("zoo:superres")
    ev = evaluate(torch_runner(model.module), datasets.validation_images(), scale=3, border=3)
    assert [s.name for s in ev.images] == ["chelsea", "coffee", "monarch"]
    assert ev.mean_gain >= 1.5, ev.to_dict()
    assert all(s.gain > 0.5 for s in ev.images)


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
