from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_eval_on_the_validation_photos_matches_the_model_card(cli, tmp_path: Path) -> None:
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    import ferry

    res = cli(
        "eval", "superres", "--model", "zoo:superres", "--json", tmp_path / "e.json", "--report", tmp_path / "e.html"
    )
    assert res.code == 0, res.err
    data = json.loads((tmp_path / "e.json").read_text())
    card = ferry.zoo.get("superres").card()["validation"]
    assert data["mean_psnr_model"] == pytest.approx(card["mean_psnr_model"], abs=0.02)
    assert data["mean_ssim_model"] > data["mean_ssim_bicubic"]
    assert data["worst_gain_db"] <= data["median_gain_db"] and data["model"] == "zoo:superres"
    html = (tmp_path / "e.html").read_text()
    assert "monarch" in html and "data:image/png;base64," in html


def test_eval_defaults_to_ferry_upscales_model_and_reproduces_its_card(cli) -> None:
    """The default model's card holds every validation photo's numbers; the three bundled ones
    (chelsea, coffee, monarch) are reproduced here, the wallpaper photos by ``--data wallpapers``."""
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    import ferry

    res = cli("eval", "superres", "--json", "-")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["model"] == "zoo:superres_span"
    card = {i["name"]: i for i in ferry.zoo.get("superres_span").card()["validation"]["images"]}
    for image in data["images"]:
        assert image["psnr_model"] == pytest.approx(card[image["name"]]["psnr_model"], abs=0.02), image["name"]
        assert image["ssim_model"] == pytest.approx(card[image["name"]]["ssim_model"], abs=1e-3), image["name"]


@pytest.mark.slow
def test_eval_on_the_wallpaper_photos_reproduces_the_card_mean(cli) -> None:
    """Needs the held-out Debian wallpaper packages (training machines only; never CI)."""
    import ferry
    from ferry.superres import datasets

    if datasets.missing_wallpapers(datasets.wallpaper_split("validation")):
        pytest.skip("the held-out wallpaper photos are not installed (see training/superres_span_x3/README.md)")
    res = cli("eval", "superres", "--data", "wallpapers", "--json", "-")
    assert res.code == 0, res.err
    card = ferry.zoo.get("superres_span").card()["validation"]
    data = json.loads(res.out)
    assert len(data["images"]) == len(card["images"]) >= 23
    assert data["mean_gain_db"] == pytest.approx(card["mean_gain_db"], abs=0.01)


def test_eval_on_a_folder_and_bad_folders(cli, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    x = np.linspace(0, 6 * np.pi, 96)
    wave = (127 + 100 * np.sin(x)[None, :] * np.cos(x)[:, None]).astype(np.uint8)
    Image.fromarray(np.stack([wave, wave.T, wave], axis=-1)).save(photos / "waves.png")
    res = cli("eval", "superres", photos, "--json", "-")
    assert res.code == 0, res.err
    images = json.loads(res.out)["images"]
    assert [i["name"] for i in images] == ["waves.png"] and images[0]["size"] == [96, 96]
    assert cli("eval", "superres", tmp_path / "missing").code == 1
    assert cli("eval", "nope").code == 1
