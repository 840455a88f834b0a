from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def test_demo_writes_every_file_and_beats_bicubic(cli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    res = cli("demo", "--out", out)
    assert res.code == 0, res.err
    assert "PSNR ferry" in res.out and "report:" in res.out
    for name in (
        "superres.onnx",
        "input.png",
        "bicubic.png",
        "ferry.png",
        "original.png",
        "comparison.png",
        "cat_x3.png",
        "report.html",
        "report.json",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] is True
    assert report["check"]["valid"] is True
    assert report["verify"]["ok"] is True
    sr = report["super_resolution"]
    # The cat is the hardest validation photo (fur): ferry must still beat bicubic on it.
    assert sr["psnr_y_ferry_db"] - sr["psnr_y_bicubic_db"] > 0.3
    assert sr["max_pixel_diff_onnxruntime_vs_pytorch"] <= 1
    with Image.open(out / "input.png") as small, Image.open(out / "ferry.png") as big:
        assert (big.width, big.height) == (small.width * 3, small.height * 3)
    with Image.open(out / "cat_x3.png") as cat:
        assert cat.size == (451 * 3, 300 * 3)
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert "<script" not in html and "https://" not in html
    # No temporary files are left behind.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
