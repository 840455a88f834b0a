"""Images that come inside installed packages: the only training and validation data ferry uses.

Training: scikit-image's bundled photos and textures (except ``chelsea`` and ``coffee``) and
sporco's images (except ``monarch``). Validation: ``chelsea``, ``coffee`` and ``monarch``.
No file is ever downloaded.
"""

from __future__ import annotations

from PIL import Image

from ferry.images import BUNDLED_PHOTOS, bundled_photos, open_bundled

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
VALIDATION = BUNDLED_PHOTOS


def chelsea() -> Image.Image:
    """The cat photo bundled with scikit-image (451x300), the demo's input."""
    return open_bundled("skimage", "chelsea.png")[1]


def training_images() -> list[tuple[str, Image.Image]]:
    """The named RGB training images, in a fixed order."""
    return [open_bundled("skimage", f) for f in SKIMAGE_TRAIN] + [open_bundled("sporco", f) for f in SPORCO_TRAIN]


def validation_images() -> list[tuple[str, Image.Image]]:
    """The named RGB validation images: chelsea, coffee, monarch."""
    return bundled_photos()
