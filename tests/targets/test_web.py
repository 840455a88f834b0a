"""The web target and the ort-web backend, in a real headless Chromium served from 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferry
from ferry import _browser as web
from ferry.backends import REGISTRY
from ferry.errors import MissingDependencyError, UserError

pytestmark = pytest.mark.skipif(bool(web.missing()), reason=f"browser runtime missing: {web.missing()}")


def _photo(path: Path) -> Image.Image:
    from skimage import data

    img = Image.fromarray(data.chelsea()).crop((100, 50, 196, 122))  # 96x72, the cat's eye
    img.save(path)
    return img


def test_web_package_upscales_a_picked_photo_in_chromium_as_the_desktop_does(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    result = ferry.package("zoo:superres", folder, "web")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["inputs"][0] == {
        "name": "rgb", "dtype": "uint8", "shape": [224, 224, 3], "dynamic_axes": {"0": "height", "1": "width"}
    }  # fmt: skip
    assert manifest["task"]["io"] == "rgb-uint8" and manifest["runtime"] == "ONNX Runtime Web"
    assert manifest["runtime_version"] == web.ort_web_version(web.ort_web_dist())  # the npm package's, 1.30.0
    assert set(web.RUNTIME_FILES) <= set(result.files) and "index.html" in result.files
    assert "python -m http.server --bind 127.0.0.1" in (folder / "README.md").read_text()
    photo = _photo(tmp_path / "eye.png")
    with web.serve({name: folder / name for name in result.files}) as base:
        page = web.browser().page(base + "index.html")
        page.wait_for_selector("body[data-state=ready]")
        page.set_input_files("#file", str(tmp_path / "eye.png"))
        page.wait_for_selector("body[data-state=done], body[data-state=error]")
        status = page.text_content("#status")
        assert page.evaluate("document.body.dataset.state") == "done", status
        w, h, rgba = page.evaluate(
            "() => { const c = document.getElementById('after');"
            " return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"
        )
        web.close_page(page)
    assert (w, h) == (288, 216) and "96x72 -> 288x216" in status
    got = np.array(rgba, np.uint8).reshape(h, w, 4)[..., :3]
    desktop = ferry.run(folder / "model.onnx", {"rgb": np.asarray(photo)}).outputs["upscaled"]
    diff = np.abs(got.astype(int) - desktop.astype(int))
    assert diff.max() <= 1, diff.max()  # the browser computes the desktop's picture


def test_ort_web_backend_matches_eager_at_several_shapes(superres_onnx: Path) -> None:
    report = ferry.verify("zoo:superres", superres_onnx, config=ferry.VerifyConfig(backends=("ort-web",)))
    assert report, report.to_dict()
    row = report.to_dict()["backends"]["ort-web"]
    assert row["ok"] and row["checks"] >= 3  # the export size, a smaller and a larger one
    assert row["settings"]["execution_provider"] == "wasm" and row["settings"]["chromium"]


def test_ort_web_session_reports_page_timing_and_bad_models(tmp_path: Path, superres_onnx: Path) -> None:
    session = REGISTRY.get("ort-web").load(superres_onnx)
    try:
        x = np.random.default_rng(0).random((1, 1, 20, 12), dtype=np.float32)
        out = session.run({"input": x})
        assert out.outputs["output"].shape == (1, 1, 60, 36) and 0 < out.seconds < 10
        page = session._pages[0]
    finally:
        session.close()
    assert page.is_closed() and not session._pages
    with pytest.raises(UserError, match="ort-web session is closed"):
        session.run({"input": x})
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises((UserError, Exception)):
        REGISTRY.get("ort-web").load(bad)


def test_web_target_refuses_models_without_an_image_pipeline(tmp_path: Path, superres_onnx: Path) -> None:
    with pytest.raises(UserError, match="web target builds an upscaling page"):
        ferry.package(superres_onnx, tmp_path / "w", "web")
    assert not (tmp_path / "w").exists()


def test_missing_onnxruntime_web_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_ORT_WEB", str(tmp_path / "nowhere"))
    assert "npm" in web.missing()
    assert not REGISTRY.get("ort-web").info().available
    with pytest.raises(MissingDependencyError, match="onnxruntime-web is not installed"):
        ferry.package("zoo:superres", tmp_path / "w", "web")
