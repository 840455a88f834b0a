"""16-bit RGB(A) images, which Pillow cannot hold: read and written with tifffile (TIFF) and
pypng (PNG), taken apart into float YCbCr for the network and put back together at 16 bits.

The colour path is the 8-bit one's (full-range BT.601 YCbCr, Y through the network, Cb/Cr and
alpha upscaled with PIL's bicubic filter) in float32 "F" images, with no rounding until the final
16-bit values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ferry._inputs import input_file
from ferry.errors import UserError, first_line
from ferry.images import check_pixels

# Full-range BT.601 (JPEG, PIL's YCbCr), on values in [0, 1] with chroma centred on 0.5.
_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float32
)
_FROM_YCBCR = np.array([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=np.float32)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Deep16:
    """A 16-bit RGB or RGBA image as ``H x W x C`` uint16, with what it carries to the output."""

    pixels: np.ndarray
    icc_profile: bytes | None = None
    mode: str = "RGB;16"

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4


def is_deep_rgb(path: Path) -> bool:
    """A 16-bit RGB(A) PNG or TIFF (what Pillow would read at 8 bits or not at all)."""
    try:
        if not path.is_file():  # never open a FIFO or a device: the read would block or not end
            return False
        with path.open("rb") as f:
            head = f.read(26)
    except OSError:
        return False
    if head[:8] == PNG_SIGNATURE and len(head) == 26:
        return head[24] == 16 and head[25] in (2, 6)  # bit depth 16, colour type RGB or RGBA
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                return page.dtype == np.uint16 and page.samplesperpixel in (3, 4) and page.photometric == 2
        except Exception:  # any damage: not ours to read; Pillow then says what is wrong with it
            return False
    return False


def read(path: Path) -> Deep16:
    """Read a 16-bit RGB(A) PNG or TIFF, refusing from its header an image over the pixel limit
    that every image reader applies (:func:`ferry.images.max_pixels`).

    Raises:
        UserError: a file that cannot be decoded, or declares too many pixels.
    """
    path = input_file(path, "image", hint="pass the path of an existing image file")
    try:
        with path.open("rb") as f:
            is_png = f.read(8) == PNG_SIGNATURE
        return _read_png(path) if is_png else _read_tiff(path)
    except UserError:
        raise
    except MemoryError:
        raise UserError(f"image {path} is too large to decode in the memory available here") from None
    except Exception as exc:  # pypng and tifffile raise their own error types for bad files
        raise UserError(f"cannot read image {path}: {first_line(exc)}; pass a valid PNG or TIFF file") from exc


def _read_png(path: Path) -> Deep16:
    """Decode row by row into one preallocated array: the memory is the image's, once."""
    import png

    reader = png.Reader(filename=os.fspath(path))
    reader.preamble()  # the chunks before the pixels: the size is known, nothing is decoded yet
    check_pixels(path, reader.width, reader.height)
    width, height, rows, meta = reader.asDirect()
    planes = 4 if meta.get("alpha") else 3
    pixels = np.empty((height, width * planes), dtype=np.uint16)
    count = 0
    for count, row in enumerate(rows, start=1):
        if count > height:
            break
        pixels[count - 1] = row
    if count != height:
        raise UserError(f"image {path} is truncated: {count} of its {height} rows could be read")
    return Deep16(pixels.reshape(height, width, planes))


def _read_tiff(path: Path) -> Deep16:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        shape = tuple(int(d) for d in page.shape)
        if len(shape) != 3 or shape[2] not in (3, 4):
            raise UserError(f"{path}: expected a 16-bit RGB or RGBA image, got shape {shape}")
        check_pixels(path, shape[1], shape[0])
        if 0 in shape:
            raise UserError(f"{path} is an empty image (0 pixels)")
        pixels = page.asarray()
        icc = page.tags.get("InterColorProfile")
        icc_bytes = bytes(icc.value) if icc is not None else None
    return Deep16(np.ascontiguousarray(pixels), icc_bytes)


def split(img: Deep16) -> tuple[np.ndarray, Image.Image, Image.Image, Image.Image | None]:
    """Y as a ``1 x 1 x H x W`` float32 array in [0, 1], Cb and Cr (and alpha) as "F" images."""
    rgb = img.pixels[..., :3].astype(np.float32) / 65535.0
    ycc = rgb @ _TO_YCBCR.T
    ycc[..., 1:] += 0.5
    alpha = Image.fromarray(img.pixels[..., 3].astype(np.float32) / 65535.0, "F") if img.has_alpha else None
    y = np.ascontiguousarray(ycc[..., 0][None, None])
    return y, Image.fromarray(ycc[..., 1], "F"), Image.fromarray(ycc[..., 2], "F"), alpha


def merge(y_big: np.ndarray, cb: Image.Image, cr: Image.Image, alpha: Image.Image | None, icc: bytes | None) -> Deep16:
    """Put the network's Y and the bicubically upscaled Cb, Cr (and alpha) back into 16-bit RGB(A)."""
    y = y_big[0, 0].astype(np.float32)
    size = (y.shape[1], y.shape[0])
    cb_big = np.asarray(cb.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) - 0.5
    cr_big = np.asarray(cr.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) - 0.5
    rgb = np.stack([y, cb_big, cr_big], axis=-1) @ _FROM_YCBCR.T
    planes = [rgb]
    if alpha is not None:
        planes.append(np.asarray(alpha.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)[..., None])
    out = np.clip(np.rint(np.concatenate(planes, axis=-1) * 65535.0), 0, 65535).astype(np.uint16)
    return Deep16(out, icc)


def save(img: Deep16, target: Path, *, png_compression: int = 6) -> None:
    """Write 16-bit PNG or TIFF; JPEG and WebP (8 bits) get the image rounded to 8 bits."""
    suffix = target.suffix.lower()
    if suffix == ".png":
        import png

        h, w, c = img.pixels.shape
        writer = png.Writer(w, h, greyscale=False, alpha=c == 4, bitdepth=16, compression=png_compression)
        with target.open("wb") as f:
            writer.write(f, img.pixels.reshape(h, w * c))
    elif suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(target, img.pixels, photometric="rgb", compression="zlib", iccprofile=img.icc_profile)
    else:
        eight = np.rint(img.pixels.astype(np.float64) / 257.0).astype(np.uint8)
        if suffix in (".jpg", ".jpeg"):
            eight = eight[..., :3]  # JPEG holds no alpha
        Image.fromarray(eight, "RGBA" if eight.shape[2] == 4 else "RGB").save(target)
