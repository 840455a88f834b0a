"""The page at ``/`` in headless Chromium: pick a photo, see it before and after, side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferry import _browser
from ferry.registry import installed_version
from ferry.serve import Server


def _missing() -> str:
    if installed_version("playwright", "playwright") is None:
        return _browser.PLAYWRIGHT_HINT
    return "" if _browser.chromium_path() else _browser.CHROMIUM_HINT


pytestmark = pytest.mark.skipif(bool(_missing()), reason=f"browser missing: {_missing()}")


def test_the_page_upscales_a_picked_photo_side_by_side(server: Server, tmp_path: Path) -> None:
    from skimage import data

    photo = tmp_path / "eye.png"
    Image.fromarray(data.chelsea()).crop((100, 50, 196, 122)).save(photo)
    page = _browser.browser().page(server.url + "/")
    try:
        assert page.evaluate("document.body.dataset.state") == "ready"
        page.set_input_files("#file", str(photo))
        page.wait_for_selector("body[data-state=done], body[data-state=error]")
        status = page.text_content("#status") or ""
        assert page.evaluate("document.body.dataset.state") == "done", status
        sizes = page.evaluate(
            "['before', 'after'].map(id => { const i = document.getElementById(id);"
            " return [i.naturalWidth, i.naturalHeight, Math.round(i.getBoundingClientRect().top)]; })"
        )
        pixels = page.evaluate(
            "() => { const i = document.getElementById('after'); const c = document.createElement('canvas');"
            " c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d');"
            " g.drawImage(i, 0, 0); return Array.from(g.getImageData(0, 0, c.width, c.height).data); }"
        )
    finally:
        _browser.close_page(page)
    assert status.startswith("96x72 -> 288x216 in ")
    (bw, bh, btop), (aw, ah, atop) = sizes
    assert (bw, bh, aw, ah) == (96, 72, 288, 216) and btop == atop  # side by side
    import ferry

    want = ferry.upscale(
        photo, tmp_path / "cli.png", ferry.UpscaleConfig(fast=True, backend="onnxruntime", precision="fp32")
    )
    assert want
    got = np.array(pixels, np.uint8).reshape(216, 288, 4)[..., :3]
    assert np.array_equal(got, np.asarray(Image.open(tmp_path / "cli.png").convert("RGB")))
