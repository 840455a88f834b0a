"""Images: reading users' files and folders (EXIF orientation applied), and the photos that come
inside installed packages, for checking models on real data without a download."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ferry.errors import MissingDependencyError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted).

    Raises:
        UserError: when the folder is missing or holds no image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    return files


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as RGB, applying its EXIF orientation.

    Raises:
        UserError: when the file is missing or is not an image Pillow can decode.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}; pass the path of an existing image file")
    try:
        with Image.open(path) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {exc}; pass a valid PNG, JPEG, WebP or TIFF file") from exc


#: Photos that never serve for training or calibration anywhere in ferry: what stages check
#: models on (the optimize gate, the runtime choice, ``ferry eval``) when no folder is given.
BUNDLED_PHOTOS = (("skimage", "chelsea.png"), ("skimage", "coffee.png"), ("sporco", "monarch.png"))


def package_data(package: str) -> Path:
    """The ``data`` folder of an installed package that ships images (scikit-image, sporco).

    Raises:
        MissingDependencyError: the package is not installed.
    """
    try:
        base = resources.files(package) / "data"
    except ModuleNotFoundError as exc:
        extra = "train" if package == "sporco" else "core"
        raise MissingDependencyError(
            f"{package} is not installed; it provides the bundled images: pip install 'ferry[{extra}]'"
        ) from exc
    return Path(str(base))


def open_bundled(package: str, filename: str) -> tuple[str, Image.Image]:
    """One image shipped inside an installed package, named by its file stem, as RGB."""
    path = package_data(package) / filename
    with Image.open(path) as img:
        return Path(filename).stem, img.convert("RGB")


def bundled_photos() -> list[tuple[str, Image.Image]]:
    """The named RGB photos of :data:`BUNDLED_PHOTOS`: chelsea, coffee, monarch."""
    return [open_bundled(pkg, f) for pkg, f in BUNDLED_PHOTOS]
