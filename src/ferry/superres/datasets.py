"""Images that come inside installed packages: the only training and validation data ferry uses.

Two data sets, neither ever downloaded by ferry:

- ``bundled`` (the default): scikit-image's photos and textures (except ``chelsea`` and
  ``coffee``) and sporco's images (except ``monarch``) for training; ``chelsea``, ``coffee`` and
  ``monarch`` for validation.
- ``wallpapers``: the above plus the photographs of Debian's wallpaper packages listed in
  ``wallpapers.json``, held out by package: ``lomiri-wallpapers-16.04`` trains,
  ``plasma-workspace-wallpapers``, ``mate-backgrounds`` and ``lomiri-wallpapers-20.04`` validate
  (with chelsea, coffee and monarch). The photos stay where apt installed them; only weights
  trained on them are shipped.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from ferry.cache import sha256_file
from ferry.errors import MissingDependencyError, UserError
from ferry.images import BUNDLED_PHOTOS, bundled_photos, load_image, open_bundled, package_data
from ferry.superres.config import DATA_SET_NAMES

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

#: Data set names: what ``ferry train superres --data`` accepts.
DATA_SETS = DATA_SET_NAMES

# Distribution names of the Python packages whose data folders hold the bundled images.
_DISTRIBUTIONS = {"skimage": "scikit-image", "sporco": "sporco"}


@dataclass(frozen=True)
class Wallpaper:
    """One photograph of a Debian wallpaper package, as catalogued in ``wallpapers.json``.

    Attributes:
        name: unique short name (the Plasma wallpaper's folder, else the file stem).
        package: Debian binary package that installs it.
        version: package version the catalogue was made from (the hash belongs to it).
        path: absolute path where the package installs it.
        sha256: hash of the file in that version.
        width: width in pixels.
        height: height in pixels.
        split: ``train`` or ``validation``; whole packages go to one side.
        subject: a one-word content tag.
    """

    name: str
    package: str
    version: str
    path: str
    sha256: str
    width: int
    height: int
    split: str
    subject: str = ""

    def located(self, root: Path | None = None) -> Path:
        """Where the file is under ``root`` (``/`` by default; a folder a ``.deb`` was extracted into)."""
        path = PurePosixPath(self.path)
        return Path(path) if root is None else Path(root).joinpath(*path.parts[1:])


@dataclass(frozen=True)
class SourceFile:
    """An image file used for training or validation, and where it comes from (for model cards).

    Attributes:
        name: image name in scores (unique within a data set).
        package: the package that installs it (a Python distribution or a Debian package).
        version: that package's version.
        file: where the package puts it (Debian: the absolute path; Python: inside the package).
        sha256: hash of the file that was read.
        path: where it was read on this machine (left out of cards).
        collection: ``bundled`` (scikit-image, sporco) or ``wallpapers``.
    """

    name: str
    package: str
    version: str
    file: str
    sha256: str
    path: Path
    collection: str = "bundled"

    def load(self) -> tuple[str, Image.Image]:
        """The named RGB image (EXIF orientation applied)."""
        return self.name, load_image(self.path)

    def to_dict(self) -> dict[str, Any]:
        """The card entry: name, package, version, file, sha256."""
        return {k: v for k, v in asdict(self).items() if k not in ("path", "collection")}


@functools.cache
def wallpapers() -> tuple[Wallpaper, ...]:
    """The curated wallpaper photos of ``wallpapers.json`` (train and validation)."""
    text = (resources.files("ferry.superres") / "wallpapers.json").read_text(encoding="utf-8")
    return tuple(Wallpaper(**entry) for entry in json.loads(text)["photos"])


def wallpaper_split(split: str, catalogue: Sequence[Wallpaper] | None = None) -> list[Wallpaper]:
    """The catalogued photos of one split, ``train`` or ``validation``."""
    if split not in ("train", "validation"):
        raise UserError(f"unknown split {split!r}; known: train, validation")
    return [w for w in (wallpapers() if catalogue is None else catalogue) if w.split == split]


def missing_wallpapers(photos: Sequence[Wallpaper], root: Path | None = None) -> list[Wallpaper]:
    """The photos that are not installed (no file at their path under ``root``)."""
    return [w for w in photos if not w.located(root).is_file()]


def install_command(photos: Sequence[Wallpaper]) -> str:
    """The apt command that installs the packages of ``photos``."""
    return "apt-get install --no-install-recommends " + " ".join(sorted({w.package for w in photos}))


def require_installed(photos: Sequence[Wallpaper], what: str, root: Path | None = None) -> None:
    """Raise when some of ``photos`` are not installed, with the command that installs them.

    Raises:
        MissingDependencyError: "N of the M training photos are not installed: apt-get install ...".
    """
    missing = missing_wallpapers(photos, root)
    if missing:
        where = "" if root is None else f" under {root}"
        raise MissingDependencyError(
            f"{len(missing)} of the {len(photos)} {what} photos are not installed{where}"
            f" (e.g. {missing[0].path}): {install_command(missing)}"
        )


def _wallpaper_files(split: str, root: Path | None, catalogue: Sequence[Wallpaper] | None) -> list[SourceFile]:
    photos = wallpaper_split(split, catalogue)
    require_installed(photos, "training" if split == "train" else "validation", root)
    return [
        SourceFile(w.name, w.package, w.version, w.path, sha256_file(w.located(root)), w.located(root), "wallpapers")
        for w in photos
    ]


def _bundled_files(package: str, filenames: Sequence[str]) -> list[SourceFile]:
    dist = _DISTRIBUTIONS[package]
    folder = package_data(package)
    version = metadata.version(dist)
    return [
        SourceFile(Path(f).stem, dist, version, f"{package}/data/{f}", sha256_file(folder / f), folder / f)
        for f in filenames
    ]


def _check_data(data: str) -> None:
    if data not in DATA_SETS:
        raise UserError(f"unknown data set {data!r}; known: {', '.join(DATA_SETS)}")


def training_files(
    data: str = "bundled", *, root: Path | None = None, catalogue: Sequence[Wallpaper] | None = None
) -> list[SourceFile]:
    """The training files of a data set (see the module docstring), in a fixed order.

    Args:
        data: ``bundled`` or ``wallpapers``.
        root: where the wallpaper packages' files are (``/``: installed by apt).
        catalogue: wallpaper photos to use instead of ``wallpapers.json`` (tests).

    Raises:
        MissingDependencyError: a wallpaper photo or sporco is not installed.
    """
    _check_data(data)
    files = _bundled_files("skimage", SKIMAGE_TRAIN) + _bundled_files("sporco", SPORCO_TRAIN)
    if data == "wallpapers":
        files += _wallpaper_files("train", root, catalogue)
    return files


def validation_files(
    data: str = "bundled", *, root: Path | None = None, catalogue: Sequence[Wallpaper] | None = None
) -> list[SourceFile]:
    """The validation files of a data set: the held-out wallpaper photos (``wallpapers``), then
    chelsea, coffee and monarch. Arguments as for :func:`training_files`."""
    _check_data(data)
    files = _wallpaper_files("validation", root, catalogue) if data == "wallpapers" else []
    for package, filename in BUNDLED_PHOTOS:
        files += _bundled_files(package, [filename])
    return files


def load_all(files: Sequence[SourceFile]) -> list[tuple[str, Image.Image]]:
    """The named RGB images of ``files``, in order."""
    return [f.load() for f in files]


def selection_crop(img: Image.Image, scale: int, size: int = 384) -> Image.Image:
    """The centre of ``img``, at most ``size`` pixels a side, both sides multiples of ``scale``.

    Scoring a fixed crop of each validation photo keeps checkpoint selection fast on a CPU.
    """
    w = min(img.width, size) // scale * scale
    h = min(img.height, size) // scale * scale
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def chelsea() -> Image.Image:
    """The cat photo bundled with scikit-image (451x300), the demo's input."""
    return open_bundled("skimage", "chelsea.png")[1]


def training_images(data: str = "bundled", *, root: Path | None = None) -> list[tuple[str, Image.Image]]:
    """The named RGB training images of a data set, in a fixed order."""
    if data == "bundled":
        return [open_bundled("skimage", f) for f in SKIMAGE_TRAIN] + [open_bundled("sporco", f) for f in SPORCO_TRAIN]
    return load_all(training_files(data, root=root))


def validation_images(data: str = "bundled", *, root: Path | None = None) -> list[tuple[str, Image.Image]]:
    """The named RGB validation images of a data set (``bundled``: chelsea, coffee, monarch)."""
    if data == "bundled":
        return bundled_photos()
    return load_all(validation_files(data, root=root))
