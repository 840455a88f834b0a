"""Images: reading users' files and folders (EXIF orientation applied), and the photos that come
inside installed packages, for checking models on real data without a download."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from PIL import Image, ImageOps

from ferry._inputs import input_file
from ferry.errors import MissingDependencyError, UserError, first_line

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


def max_pixels() -> int | None:
    """The most pixels an image may have: Pillow's decompression-bomb limit (twice
    ``PIL.Image.MAX_IMAGE_PIXELS``, about 179 Mpx), applied to every reader (Pillow, pypng,
    tifffile); ``None`` when a program has switched Pillow's limit off."""
    limit = Image.MAX_IMAGE_PIXELS
    return None if limit is None else 2 * int(limit)


def check_pixels(path: str | os.PathLike[str], width: int, height: int) -> None:
    """Refuse, from the size its header declares and before anything is decoded, an image over
    :func:`max_pixels` (a small file can declare a huge image: a decompression bomb).

    Raises:
        UserError: naming the size and the limit.
    """
    limit = max_pixels()
    if limit is not None and width * height > limit:
        raise UserError(
            f"image {path} declares {width}x{height} pixels ({width * height / 1e6:.0f} Mpx), over the limit of"
            f" {limit / 1e6:.0f} Mpx that guards against decompression bombs; split or downscale it first"
        )


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file as RGB, applying its EXIF orientation.

    Raises:
        UserError: when the file is missing, is not an image Pillow can decode, or declares more
            pixels than :func:`max_pixels`.
    """
    path = input_file(path, "image", hint="pass the path of an existing image file")
    try:
        with Image.open(path) as opened:
            check_pixels(path, *opened.size)
            opened.load()
            return ImageOps.exif_transpose(opened).convert("RGB")
    except Image.DecompressionBombError:
        # Pillow refuses some bombs (a huge frame inside a file) before the size is known here.
        raise UserError(
            f"image {path} is over the limit of {(max_pixels() or 0) / 1e6:.0f} Mpx that guards against"
            " decompression bombs; split or downscale it first"
        ) from None
    except UserError:
        raise
    except Exception as exc:  # a damaged file: Pillow's parsers raise struct.error, KeyError, TypeError...
        raise UserError(
            f"cannot read image {path}: {first_line(exc)}; pass a valid PNG, JPEG, WebP or TIFF file"
        ) from exc


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


#: What the automatic gates check a model on (the runtime choice, the optimize gate): the
#: held-out photos that come with a core install (scikit-image ships them; sporco is an extra).
GATE_PHOTOS = tuple((pkg, f) for pkg, f in BUNDLED_PHOTOS if pkg == "skimage")


def gate_photos() -> list[tuple[str, Image.Image]]:
    """The named RGB photos of :data:`GATE_PHOTOS`: chelsea and coffee."""
    return [open_bundled(pkg, f) for pkg, f in GATE_PHOTOS]
