from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferry
from ferry.errors import UserError
from ferry.superres.pipeline import torch_runner
from ferry.superres.runtime_choice import choose_runtime
from ferry.superres.upscale import UpscaleConfig, upscale_image


def test_auto_choice_is_verified_fastest_and_cached(superres_onnx: Path) -> None:
    first = choose_runtime(superres_onnx, seconds=0.3, shape=(128, 128))
    names = {(c.backend, c.precision) for c in first.candidates}
    # int8 only when asked for: it cannot pass the default fidelity gate, and making it is slow
    assert ("onnxruntime", "fp32") in names and not any(p.startswith("int8") for _, p in names)
    best = next(c for c in first.candidates if (c.backend, c.precision) == (first.backend, first.precision))
    assert best.verified and best.psnr_drop_db is not None and best.psnr_drop_db <= 0.1
    assert best.within_one_level is not None and best.within_one_level >= 0.999
    timed = [c.median_ms for c in first.candidates if c.median_ms is not None]
    assert best.median_ms is not None and best.median_ms <= 1.05 * min(timed)
    assert all(c.verified for c in first.candidates if c.median_ms is not None)  # only verified ones are timed
    again = choose_runtime(superres_onnx, shape=(128, 128))
    assert again.cached and (again.backend, again.precision, again.file) == (first.backend, first.precision, first.file)
    assert not choose_runtime(superres_onnx, precision="fp32", seconds=0.3, shape=(128, 128)).precision.startswith(
        "int8"
    )
    assert choose_runtime(superres_onnx, precision="int8", seconds=0.3, shape=(128, 128)).precision.startswith("int8")


def test_auto_refuses_what_it_cannot_judge(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    from ferry.specs import parse_input_spec

    path = tmp_path / "tiny.onnx"
    ferry.export(tiny("UpNet"), path, inputs=[parse_input_spec("batch=1,1,height=8,width=8")])
    with pytest.raises(UserError, match="not a Y-channel super-resolution model"):
        choose_runtime(path)
    with pytest.raises(UserError, match="unknown precision"):
        choose_runtime(path, precision="int4")


def _photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(1)
    paths = []
    for k in range(n):
        arr = (rng.random((20 + k, 24, 3)) * 255).astype(np.uint8)
        path = folder / f"p{k}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("writers", [1, 3])
def test_pipelined_folder_equals_one_at_a_time_and_reports_in_order(tmp_path: Path, writers: int) -> None:
    paths = _photos(tmp_path / "in", 5)
    (tmp_path / "in" / "p2.png").write_bytes(b"broken")
    result = ferry.upscale(
        tmp_path / "in", tmp_path / "out", UpscaleConfig(backend="torch", writers=writers, fast=True)
    )
    assert [f.source.name for f in result.files] == [p.name for p in paths]
    assert [f.status for f in result.files] == ["done", "done", "failed", "done", "done"]
    runner = torch_runner(ferry.load_model("zoo:superres").module)
    for p in paths:
        if p.name == "p2.png":
            continue
        expected = np.asarray(upscale_image(Image.open(p).convert("RGB"), runner, 3))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / p.name)), expected)


def test_int8_precision_on_a_named_backend(tmp_path: Path, superres_onnx: Path) -> None:
    src = _photos(tmp_path / "in", 1)[0]
    fp32 = ferry.upscale(src, tmp_path / "a.png", UpscaleConfig(model=str(superres_onnx), backend="onnxruntime"))
    int8 = ferry.upscale(
        src, tmp_path / "b.png", UpscaleConfig(model=str(superres_onnx), backend="onnxruntime", precision="int8")
    )
    assert fp32.runtime == {"backend": "onnxruntime", "precision": "fp32"}
    assert int8.runtime == {"backend": "onnxruntime", "precision": "int8"}
    a = np.asarray(Image.open(tmp_path / "a.png"), np.float64)
    b = np.asarray(Image.open(tmp_path / "b.png"), np.float64)
    assert 0 < np.abs(a - b).mean() < 3
