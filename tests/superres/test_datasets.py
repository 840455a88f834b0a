from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferry.cache import sha256_file
from ferry.errors import MissingDependencyError, UserError
from ferry.superres import datasets

needs_sporco = pytest.mark.skipif(
    importlib.util.find_spec("sporco") is None,
    reason="sporco provides training images and monarch: pip install 'ferry[train]'",
)


def install_fake_wallpapers(root: Path, size: tuple[int, int] = (90, 72)) -> None:
    """Small random photos at every catalogued path under ``root``: the wallpaper logic without the packages."""
    rng = np.random.default_rng(0)
    for w in datasets.wallpapers():
        path = w.located(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG", quality=95)


def _wallpapers_installed() -> bool:
    return not datasets.missing_wallpapers(datasets.wallpapers())


def test_catalogue_is_held_out_by_package() -> None:
    train = datasets.wallpaper_split("train")
    val = datasets.wallpaper_split("validation")
    assert len(train) == 14 and len(val) >= 20
    assert {w.package for w in train}.isdisjoint({w.package for w in val})
    assert {w.sha256 for w in train}.isdisjoint({w.sha256 for w in val})
    names = [w.name for w in datasets.wallpapers()] + [Path(f).stem for _, f in datasets.BUNDLED_PHOTOS]
    assert len(set(names)) == len(names)
    assert all(len(w.sha256) == 64 and w.width > 0 and w.height > 0 and w.version for w in datasets.wallpapers())
    with pytest.raises(UserError, match="unknown split"):
        datasets.wallpaper_split("test")


@needs_sporco
def test_bundled_training_and_validation_are_disjoint() -> None:
    train, val = datasets.training_files(), datasets.validation_files()
    assert [f.name for f in val] == ["chelsea", "coffee", "monarch"]
    assert {f.name for f in train}.isdisjoint({f.name for f in val})
    assert {f.sha256 for f in train}.isdisjoint({f.sha256 for f in val})
    assert {f.package for f in train} == {"scikit-image", "sporco"}
    assert all(f.version and f.file.endswith(f.path.name) for f in train)
    with pytest.raises(UserError, match="unknown data set 'imagenet'; known: bundled, wallpapers"):
        datasets.training_files("imagenet")


@needs_sporco
def test_wallpaper_data_sets_where_the_photos_are_installed(tmp_path: Path) -> None:
    install_fake_wallpapers(tmp_path)
    train = datasets.training_files("wallpapers", root=tmp_path)
    val = datasets.validation_files("wallpapers", root=tmp_path)
    assert len(train) == len(datasets.training_files()) + 14
    assert len(val) == len(datasets.wallpaper_split("validation")) + 3 and val[-1].name == "monarch"
    assert {f.name for f in train}.isdisjoint({f.name for f in val})
    assert {f.sha256 for f in train}.isdisjoint({f.sha256 for f in val})
    assert {f.package for f in train}.isdisjoint({f.package for f in val} - {"scikit-image", "sporco"})
    kleiber = next(f for f in val if f.name == "Kleiber_by_Lukas_Baubkus")
    assert kleiber.file == "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"  # the card names the package's path
    assert kleiber.sha256 == sha256_file(kleiber.path) and kleiber.path.is_relative_to(tmp_path)
    name, img = kleiber.load()
    assert name == kleiber.name and img.mode == "RGB" and img.size == (90, 72)

    (tmp_path / "usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg").unlink()
    missing = datasets.missing_wallpapers(datasets.wallpaper_split("train"), tmp_path)
    assert [w.name for w in missing] == ["Bridge_by_Sander_Klootwijk"]
    with pytest.raises(MissingDependencyError, match="1 of the 14 training photos are not installed") as err:
        datasets.training_files("wallpapers", root=tmp_path)
    assert str(err.value).endswith("apt-get install --no-install-recommends lomiri-wallpapers-16.04")
    with pytest.raises(MissingDependencyError, match=r"\d+ of the \d+ validation photos are not installed"):
        datasets.validation_files("wallpapers", root=tmp_path / "empty")


def test_selection_crops_are_central_and_fit_the_scale() -> None:
    img = Image.fromarray(np.arange(500 * 700, dtype=np.uint32).reshape(500, 700).astype(np.uint8))
    crop = datasets.selection_crop(img, 3)
    assert crop.size == (384, 384)
    assert np.array_equal(np.asarray(crop), np.asarray(img)[58:442, 158:542])
    assert datasets.selection_crop(img.crop((0, 0, 451, 300)), 4).size == (384, 300)
    assert datasets.selection_crop(img.crop((0, 0, 451, 301)), 3).size == (384, 300)


@needs_sporco
@pytest.mark.skipif(
    not _wallpapers_installed(),
    reason="the Debian wallpaper packages are not installed: " + datasets.install_command(datasets.wallpapers()),
)
def test_installed_wallpapers_are_the_catalogued_files() -> None:
    for f in datasets.training_files("wallpapers") + datasets.validation_files("wallpapers"):
        w = next((w for w in datasets.wallpapers() if w.name == f.name), None)
        assert w is None or f.sha256 == w.sha256, f"{f.path} differs from the catalogued {w.package} {w.version}"
