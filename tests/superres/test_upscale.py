from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferry
from ferry.errors import UserError
from ferry.superres.pipeline import torch_runner
from ferry.superres.runners import tiled
from ferry.superres.upscale import UpscaleConfig, upscale_image


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
        np.testing.assert_allclose(tiled(runner, tile, overlap)(y), whole, rtol=0, atol=1e-5)
    # Without enough context the seams show: the overlap is what makes tiling exact.
    assert np.abs(tiled(runner, 16, 0)(y) - whole).max() > 1e-3


@pytest.mark.parametrize(("name", "radius"), [("superres", 5), ("superres_edsr", 19), ("superres_span", 15)])
def test_the_default_overlap_is_the_measured_receptive_radius_and_tiles_match(
    tmp_path: Path, name: str, radius: int
) -> None:
    from ferry.superres.runners import receptive_radius

    runner = torch_runner(ferry.load_model(f"zoo:{name}").module)
    assert receptive_radius(runner) == radius
    y = np.random.default_rng(0).random((1, 1, 60, 70), dtype=np.float32)
    np.testing.assert_allclose(tiled(runner, 16, radius)(y), runner(y), rtol=0, atol=1e-5)
    assert np.abs(tiled(runner, 16, 0)(y) - runner(y)).max() > 1e-3  # without context the seams show
    _photo(w=50, h=40).save(tmp_path / "p.png")
    cfg = UpscaleConfig(model=f"zoo:{name}", backend="torch", tile=16)
    result = ferry.upscale(tmp_path / "p.png", tmp_path / "tiled.png", cfg)
    assert result.overlap == radius
    ferry.upscale(tmp_path / "p.png", tmp_path / "whole.png", UpscaleConfig(model=f"zoo:{name}", backend="torch"))
    tiled_px = np.asarray(Image.open(tmp_path / "tiled.png"), np.int16)
    whole_px = np.asarray(Image.open(tmp_path / "whole.png"), np.int16)
    assert np.abs(tiled_px - whole_px).max() <= 1


def test_a_global_receptive_field_is_refused_without_an_explicit_overlap() -> None:
    from ferry.superres.runners import receptive_radius

    def global_mean(y: np.ndarray) -> np.ndarray:  # every output pixel sees the whole plane
        return np.repeat(np.repeat(y + y.mean(), 3, axis=2), 3, axis=3)

    assert receptive_radius(global_mean) is None


def test_batched_tiles_run_together_and_give_the_same_picture(tmp_path: Path) -> None:
    model = torch_runner(ferry.load_model("zoo:superres").module)
    calls: list[tuple[int, ...]] = []

    def runner(y: np.ndarray) -> np.ndarray:
        calls.append(y.shape)
        return model(y)

    y = np.random.default_rng(0).random((1, 1, 96, 96), dtype=np.float32)
    np.testing.assert_allclose(tiled(runner, 16, 8, batch=4)(y), model(y), rtol=0, atol=1e-5)
    # 36 tiles; the 16 inner ones share a shape and run 4 at a time
    assert max(s[0] for s in calls) == 4 and len(calls) < 36
    _photo(w=50, h=40).save(tmp_path / "p.png")
    assert ferry.upscale(tmp_path / "p.png", tmp_path / "b.png", UpscaleConfig(backend="torch", tile=16, batch=3))
    with pytest.raises(UserError, match="--batch groups the tiles"):
        ferry.upscale(tmp_path / "p.png", tmp_path / "c.png", UpscaleConfig(backend="torch", batch=3))


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


def test_16bit_grayscale_keeps_16_bits(tmp_path: Path) -> None:
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


@pytest.mark.parametrize("alpha", [False, True])
def test_16bit_rgb_png_and_tiff_stay_16_bit_and_match_the_8bit_pipeline(tmp_path: Path, alpha: bool) -> None:
    import png
    import tifffile

    from ferry.superres import deep16

    rgb8 = np.asarray(_photo(w=56, h=40, mode="RGB"))
    pixels = rgb8.astype(np.uint16) * 257  # the 8-bit photo, exactly, at 16 bits
    if alpha:
        pixels = np.dstack([pixels, np.linspace(0, 65535, 40 * 56).reshape(40, 56).astype(np.uint16)])
    h, w, c = pixels.shape
    src = tmp_path / "in"
    src.mkdir()
    with (src / "p.png").open("wb") as f:
        png.Writer(w, h, greyscale=False, alpha=alpha, bitdepth=16).write(f, pixels.reshape(h, w * c))
    tifffile.imwrite(src / "t.tif", pixels, photometric="rgb", extrasamples=[2] if alpha else None)
    result = ferry.upscale(src, tmp_path / "out", UpscaleConfig(backend="torch", fast=True))
    assert [f.status for f in result.files] == ["done", "done"] and not any(f.warning for f in result.files)
    from_png = deep16.read(tmp_path / "out" / "p.png").pixels
    from_tif = tifffile.imread(tmp_path / "out" / "t.tif")
    assert from_png.dtype == np.uint16 and from_png.shape == (3 * h, 3 * w, c)
    np.testing.assert_array_equal(from_png, from_tif)
    assert len(np.unique(from_png[..., :3])) > 4 * 256  # values between the 8-bit levels: really 16-bit
    eight = np.asarray(upscale_image(Image.fromarray(rgb8), torch_runner(ferry.load_model("zoo:superres").module), 3))
    diff = np.abs(from_png[..., :3] / 257.0 - eight)
    # the 8-bit pipeline rounds Y, Cb and Cr to 8 bits before and after the network
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 6, (diff.mean(), diff.max())
    if alpha:
        assert abs(from_png[..., 3].astype(float).mean() - pixels[..., 3].mean()) < 0.01 * 65535


def test_the_default_is_the_strongest_model_for_the_scale_and_fast_is_espcn(tmp_path: Path, cli) -> None:
    from ferry.superres.upscale import resolve_model
    from ferry.zoo import BEST_UPSCALERS, superres_name

    assert resolve_model(UpscaleConfig()) == "zoo:superres_span"
    assert resolve_model(UpscaleConfig(fast=True)) == "zoo:superres"
    for scale in (2, 3, 4):
        assert resolve_model(UpscaleConfig(scale=scale)) == f"zoo:{BEST_UPSCALERS[scale]}"
        assert resolve_model(UpscaleConfig(scale=scale, fast=True)) == f"zoo:{superres_name(scale)}"
        assert resolve_model(UpscaleConfig(model="zoo:superres", scale=scale)) == f"zoo:{superres_name(scale)}"
    assert resolve_model(UpscaleConfig(model="zoo:superres_edsr")) == "zoo:superres_edsr"
    # the strongest is at least as good as ESPCN on the held-out photos both cards were measured on
    for scale, name in BEST_UPSCALERS.items():
        best, espcn = ferry.zoo.get(name).card(), ferry.zoo.get(superres_name(scale)).card()
        shared = {i["name"] for i in best["validation"]["images"]} & {i["name"] for i in espcn["validation"]["images"]}
        assert shared

        def gain(card: dict, names: set[str] = shared) -> float:
            return float(np.mean([i["gain"] for i in card["validation"]["images"] if i["name"] in names]))

        assert gain(best) >= gain(espcn), (scale, name)
    # --help states the rule as BEST_UPSCALERS holds it
    help_text = " ".join(cli("upscale", "--help").out.split())
    assert all(f"x{scale}: zoo:{name}" in help_text for scale, name in BEST_UPSCALERS.items())
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(tmp_path / "p.png")
    res = cli("upscale", tmp_path / "p.png", "-o", tmp_path / "q.png", "--backend", "torch", "--json", "-")
    assert res.code == 0, res.err
    assert json.loads(res.out)["model"] == "zoo:superres_span"
    res = cli("upscale", tmp_path / "p.png", "-o", tmp_path / "r.png", "--fast", "--model", "zoo:superres")
    assert res.code == 1 and "--fast or --model, not both" in res.err


def test_a_cached_zoo_export_upscales_without_importing_torch(tmp_path: Path) -> None:
    """After the first run (export into the cache), ``ferry upscale`` of a zoo model reads the
    cached file and the runtime choice: torch is blocked from import and nothing needs it."""
    import os
    import subprocess
    import sys

    _photo(w=40, h=30).save(tmp_path / "p.png")
    env = {**os.environ, "FERRY_CACHE_DIR": str(tmp_path / "cache")}
    run = "from ferry.cli import run\nsys.argv = ['ferry', 'upscale', 'p.png', '-o', '{out}', '--fast']\nrun()\n"
    first = subprocess.run(
        [sys.executable, "-c", "import sys\n" + run.format(out="a.png")], cwd=tmp_path, env=env, capture_output=True
    )
    assert first.returncode == 0, first.stderr[-2000:]
    blocked = "import sys\nsys.modules['torch'] = None\n" + run.format(out="b.png")
    second = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
