from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferry
from ferry.errors import UserError
from ferry.superres import torch_runner
from ferry.upscale import UpscaleConfig, tiled, upscale_image


def _photo(w: int = 40, h: int = 30, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    base = np.linspace(0, 255, w * h * 4).reshape(h, w, 4) + rng.normal(0, 20, (h, w, 4))
    arr = np.clip(base, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGBA").convert(mode)


def test_tiles_stitch_to_the_untiled_result() -> None:
    runner = torch_runner(ferry.load_model("zoo:superres").module)
    y = np.random.default_rng(0).random((1, 1, 50, 70), dtype=np.float32)
    whole = runner(y)
    for tile, overlap in ((16, 8), (32, 6), (20, 5)):
        np.testing.assert_allclose(tiled(runner, 3, tile, overlap)(y), whole, rtol=0, atol=1e-5)
    # Without enough context the seams show: the overlap is what makes tiling exact.
    assert np.abs(tiled(runner, 3, 16, 0)(y) - whole).max() > 1e-3


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_modes_are_kept(mode: str) -> None:
    runner = torch_runner(ferry.load_model("zoo:superres").module)
    out = upscale_image(_photo(mode=mode), runner, 3)
    assert out.mode == mode and out.size == (120, 90)


def test_single_image_keeps_icc_and_applies_exif_orientation(tmp_path: Path, cli) -> None:
    img = _photo(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "in.jpg", exif=exif.tobytes(), icc_profile=b"fake-icc-profile-bytes")
    res = cli("upscale", tmp_path / "in.jpg", "-o", tmp_path / "out.png", "--tile", "16", "--json", "-")
    assert res.code == 0, res.err
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (90, 120)  # upright: 30x40 after rotation, times 3
        assert out.info.get("icc_profile") == b"fake-icc-profile-bytes"
    assert json.loads(res.out)["files"][0]["status"] == "done"


def test_folder_run_mirrors_skips_and_survives_bad_files(tmp_path: Path, cli) -> None:
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    _photo().save(src / "a.png")
    _photo(mode="L").save(src / "sub" / "b.webp")
    good = src / "c.jpg"
    _photo().save(good)
    (src / "broken.jpg").write_bytes(good.read_bytes()[:200])  # truncated JPEG
    (src / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    res = cli("upscale", src, "-o", out, "--json", tmp_path / "r.json")
    assert res.code == 1
    assert "1 file(s) could not be upscaled" in res.err
    report = json.loads((tmp_path / "r.json").read_text())
    status = {Path(f["source"]).name: f["status"] for f in report["files"]}
    assert status == {"a.png": "done", "b.webp": "done", "c.jpg": "done", "broken.jpg": "failed"}
    assert (out / "sub" / "b.webp").is_file()
    assert not (out / "broken.jpg").exists()
    assert not [p for p in out.rglob(".*")]
    # A second run skips what is done; --overwrite redoes it.
    result = ferry.upscale(src, out)
    assert [f.status for f in result.files].count("skipped") == 3
    result = ferry.upscale(src, out, UpscaleConfig(overwrite=True, backend="torch"))
    assert [f.status for f in result.files].count("done") == 3


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="input not found"):
        ferry.upscale(tmp_path / "none.png", tmp_path / "o.png")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UserError, match="unsupported input"):
        ferry.upscale(tmp_path / "a.txt", tmp_path / "o.png")
    with pytest.raises(UserError, match="not a Y-channel super-resolution model"):
        _photo().save(tmp_path / "p.png")
        ferry.upscale(tmp_path / "p.png", tmp_path / "o.png", UpscaleConfig(model="zoo:alexnet"))


def test_onnx_file_model(tmp_path: Path, superres_onnx: Path) -> None:
    _photo().save(tmp_path / "p.png")
    result = ferry.upscale(tmp_path / "p.png", tmp_path / "o.png", UpscaleConfig(model=str(superres_onnx)))
    assert result and result.files[0].size == (120, 90)


def test_decompression_bomb_is_refused_and_other_files_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _photo(40, 30).save(src / "big.png")
    _photo(8, 6).save(src / "small.png")
    # Pillow refuses images over twice MAX_IMAGE_PIXELS: make the 40x30 one a "bomb".
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    result = ferry.upscale(src, tmp_path / "out", UpscaleConfig(backend="torch"))
    status = {f.source.name: (f.status, f.error) for f in result.files}
    assert status["small.png"][0] == "done"
    assert status["big.png"][0] == "failed" and "decompression bomb" in status["big.png"][1]
    assert not (tmp_path / "out" / "big.png").exists()


def _png16_rgb(path: Path, arr: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (Pillow cannot write one)."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_16bit_grayscale_keeps_16_bits_and_16bit_rgb_is_reported(tmp_path: Path) -> None:
    ramp = np.linspace(1000, 64000, 24 * 32).reshape(24, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    result = ferry.upscale(tmp_path / "g16.png", tmp_path / "g16_x3.png", UpscaleConfig(backend="torch"))
    out = Image.open(tmp_path / "g16_x3.png")
    big = np.asarray(out)
    assert out.mode == "I;16" and big.shape == (72, 96)
    assert big.max() > 255 and abs(big.mean() - ramp.mean()) < 0.02 * ramp.mean()  # not clipped to 255
    assert not result.files[0].warning
    ferry.upscale(tmp_path / "g16.png", tmp_path / "g16_x3.jpg", UpscaleConfig(backend="torch"))
    assert Image.open(tmp_path / "g16_x3.jpg").mode == "L"  # JPEG holds 8 bits: scaled, not clipped
    assert abs(np.asarray(Image.open(tmp_path / "g16_x3.jpg")).mean() - ramp.mean() / 257) < 3
    rgb = np.stack([ramp, ramp[::-1], ramp], axis=-1)
    _png16_rgb(tmp_path / "c16.png", rgb)
    result = ferry.upscale(tmp_path / "c16.png", tmp_path / "c16_x3.png", UpscaleConfig(backend="torch"))
    assert result and "16-bit RGB PNG read at 8 bits" in result.files[0].warning
