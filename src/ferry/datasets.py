"""Images that come inside installed packages: the only training and validation data ferry uses.

Training: scikit-image's bundled photos and textures (except ``chelsea`` and ``coffee``) and
sporco's images (except ``monarch``). Validation: ``chelsea``, ``coffee`` and ``monarch``.
No file is ever downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from PIL import Image

from ferry.errors import MissingDependencyError

# Natural photos and textures; synthetic drawings, binary masks and microscopy stacks are left out.
SKIMAGE_TRAIN = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
SPORCO_TRAIN = ("barbara.png", "kodim23.png", "sail.png", "tulips.png")
VALIDATION = (("skimage", "chelsea.png"), ("skimage", "coffee.png"), ("sporco", "monarch.png"))


def _package_dir(package: str) -> Path:
    try:
        base = resources.files(package) / "data"
    except ModuleNotFoundError as exc:
        extra = "train" if package == "sporco" else "core"
        raise MissingDependencyError(
            f"{package} is not installed; it provides the bundled images: pip install 'ferry[{extra}]'"
        ) from exc
    return Path(str(base))


def _open(package: str, filename: str) -> tuple[str, Image.Image]:
    path = _package_dir(package) / filename
    with Image.open(path) as img:
        return Path(filename).stem, img.convert("RGB")


def chelsea() -> Image.Image:
    """The cat photo bundled with scikit-image (451x300), the demo's input."""
    return _open("skimage", "chelsea.png")[1]


def training_images() -> list[tuple[str, Image.Image]]:
    """The named RGB training images, in a fixed order."""
    return [_open("skimage", f) for f in SKIMAGE_TRAIN] + [_open("sporco", f) for f in SPORCO_TRAIN]


def validation_images() -> list[tuple[str, Image.Image]]:
    """The named RGB validation images: chelsea, coffee, monarch."""
    return [_open(pkg, f) for pkg, f in VALIDATION]
