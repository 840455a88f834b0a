from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def test_eval_on_the_validation_photos_matches_the_model_card(cli, tmp_path: Path) -> None:
    pytest.importorskip("sporco", reason="sporco provides monarch: pip install 'ferry[train]'")
    import ferry

    res = cli("eval", "superres", "--json", tmp_path / "e.json", "--report", tmp_path / "e.html")
    assert res.code == 0, res.err
    data = json.loads((tmp_path / "e.json").read_text())
    card = ferry.zoo.get("superres").card()["validation"]
    assert data["mean_psnr_model"] == pytest.approx(card["mean_psnr_model"], abs=0.02)
    assert data["mean_ssim_model"] > data["mean_ssim_bicubic"]
    html = (tmp_path / "e.html").read_text()
    assert "monarch" in html and "data:image/png;base64," in html


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
