"""The tutorial's last step, for every target: super-resolve real photos on each runtime and
compare the result with the desktop PyTorch one.

Each photo is cropped to a multiple of the scale and downscaled bicubically (the standard
degradation), then upscaled by PyTorch eager and by every runtime through the same YCbCr pipeline.
Per runtime: PSNR of its RGB result against PyTorch's (how close to the desktop), PSNR on Y
against the original photo (how good), the largest pixel difference from PyTorch, the median
latency of the network on the photo, and the size of the file that runtime ships.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ferry.backends import Session
from ferry.bench._timing import median_time
from ferry.superres import imaging
from ferry.superres.pipeline import Runner, session_runner, super_resolve


@dataclass
class TargetPhotos:
    """One runtime on the photos."""

    backend: str
    precision: str
    psnr_vs_pytorch_db: float
    psnr_vs_original_db: float
    max_pixel_diff: int
    median_ms: float
    artifact: str
    artifact_bytes: int | None
    #: how the runtime was run when it differs from the others (static shapes)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PhotoComparison:
    """Every runtime's numbers, PyTorch's own quality, and the images for the report."""

    photos: list[str]
    scale: int
    pytorch_psnr_db: float
    targets: list[TargetPhotos]
    crops: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    # The verify report's task section (ferry.tasks.TaskReport).
    @property
    def title(self) -> str:
        return f"x{self.scale} on real photos ({', '.join(self.photos)}), every runtime vs desktop PyTorch"

    @property
    def caption(self) -> str:
        return f"x{self.scale} on {len(self.photos)} photo(s), every runtime vs desktop PyTorch (PSNR in dB)"

    @property
    def headers(self) -> list[str]:
        return PHOTO_HEADERS

    def rows(self) -> list[list[object]]:
        return photo_rows(self)

    def notes(self) -> list[tuple[str, str]]:
        """(runtime, how it was run differently) for the runtimes that were."""
        return [(t.backend, t.note) for t in self.targets if t.note]

    def html(self) -> str:
        """The notes and the first photo's centre from each runtime, side by side."""
        from ferry.report import esc, image_tag

        notes = "".join(f"<p>{esc(name)}: {esc(note)}</p>" for name, note in self.notes())
        figures = "".join(image_tag(img, name) for name, img in self.crops.items())
        return notes + f"<div>{figures}</div>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "photos": self.photos,
            "scale": self.scale,
            "pytorch_psnr_vs_original_db": self.pytorch_psnr_db,
            "targets": [t.to_dict() for t in self.targets],
        }


def compare_on_photos(
    reference: Runner,
    sessions: Mapping[str, Session],
    photos: Sequence[tuple[str, Image.Image]],
    *,
    scale: int,
    artifacts: Mapping[str, tuple[str, int | None]] | None = None,
    border: int = 3,
    reopen: Callable[[str, tuple[int, int]], Session] | None = None,
) -> PhotoComparison:
    """Upscale each photo with PyTorch (``reference``) and with every session; compare.

    Args:
        reference: the PyTorch eager Y runner.
        sessions: runtime name -> a session taking the Y plane.
        photos: named high-resolution photos.
        scale: the model's upscale factor.
        artifacts: runtime name -> (file name, size in bytes) of what that runtime ships.
        reopen: makes a runtime's session for a given low-resolution ``(height, width)``; a
            static-shape session (LiteRT) is then converted at each photo's size, as an app that
            knows its camera's resolution packages it, instead of running in padded windows.
    """
    ref = _reference(reference, photos, scale, border)
    targets = [
        _target(backend, session, ref, reopen, (artifacts or {}).get(backend, ("", None)), border)
        for backend, session in sessions.items()
    ]
    return PhotoComparison(ref.names, scale, float(np.mean(ref.psnr)), targets, ref.crops)


@dataclass
class _Reference:
    """The photos as PyTorch upscales them: what every runtime is compared with."""

    names: list[str] = field(default_factory=list)
    lows: list[Image.Image] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)
    originals: list[np.ndarray] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    crops: dict[str, Image.Image] = field(default_factory=dict)


def _reference(reference: Runner, photos: Sequence[tuple[str, Image.Image]], scale: int, border: int) -> _Reference:
    ref = _Reference()
    for name, photo in photos:
        hr = imaging.crop_to_multiple(photo.convert("RGB"), scale)
        lr = imaging.downscale(hr, scale)
        out = super_resolve(lr, reference)
        ref.names.append(name)
        ref.lows.append(lr)
        ref.outputs.append(np.asarray(out))
        ref.originals.append(imaging.luminance(hr))
        ref.psnr.append(imaging.psnr(ref.originals[-1], imaging.luminance(out), border=border))
        if len(ref.names) == 1:
            ref.crops["original"] = _crop(hr)
            ref.crops["pytorch"] = _crop(out)
    return ref


def _target(
    backend: str,
    session: Session,
    ref: _Reference,
    reopen: Callable[[str, tuple[int, int]], Session] | None,
    artifact: tuple[str, int | None],
    border: int,
) -> TargetPhotos:
    """One runtime upscales every photo; its numbers against PyTorch and the originals."""
    static = _static_size(session)
    note = ""
    if static and reopen is not None:
        note = "static shapes: converted at each photo's size"
    elif static:
        note = f"static shapes: run in overlapping {static[0]}x{static[1]} windows"
    sq_err, count = 0.0, 0
    vs_hr, worst, times = [], 0, []
    for k, lr in enumerate(ref.lows):
        own = session
        if static and reopen is not None and (lr.height, lr.width) != static:
            own = reopen(backend, (lr.height, lr.width))
        runner = session_runner(own)
        out = super_resolve(lr, runner)
        y = imaging.y_to_array(imaging.split_ycbcr(lr)[0])
        times.append(1e3 * median_time(functools.partial(runner, y)))
        if own is not session:
            own.close()
        arr = np.asarray(out)
        diff = arr.astype(np.float64) - ref.outputs[k].astype(np.float64)
        sq_err, count = sq_err + float(np.square(diff).sum()), count + diff.size
        vs_hr.append(imaging.psnr(ref.originals[k], imaging.luminance(out), border=border))
        worst = max(worst, int(np.abs(arr.astype(np.int16) - ref.outputs[k].astype(np.int16)).max()))
        if k == 0:
            ref.crops[backend] = _crop(out)
    return TargetPhotos(
        backend=backend,
        precision=session.precision,
        # pooled over all photos' pixels: one identical photo does not make the mean infinite
        psnr_vs_pytorch_db=float("inf") if sq_err == 0 else 10 * np.log10(255.0**2 * count / sq_err),
        psnr_vs_original_db=float(np.mean(vs_hr)),
        max_pixel_diff=worst,
        median_ms=float(np.median(times)),
        artifact=artifact[0],
        artifact_bytes=artifact[1],
        note=note,
    )


def _static_size(session: Session) -> tuple[int, int] | None:
    """The fixed (height, width) of a session's Y input, or ``None`` when they are dynamic."""
    shape = session.inputs[0].shape
    if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return shape[2], shape[3]
    return None


def _crop(img: Image.Image, size: int = 128) -> Image.Image:
    """A centre crop, shown at 2x so that differences are visible."""
    w, h = img.size
    s = min(size, w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((2 * s, 2 * s), Image.Resampling.NEAREST)


PHOTO_HEADERS = [
    "backend",
    "precision",
    "PSNR vs PyTorch",
    "PSNR vs original",
    "max px diff",
    "median ms",
    "file",
    "size",
]


def photo_rows(comparison: PhotoComparison) -> list[list[object]]:
    rows: list[list[object]] = [["torch (desktop)", "fp32", "reference", comparison.pytorch_psnr_db, 0, "", "", ""]]
    for t in comparison.targets:
        vs_ref = "identical" if t.psnr_vs_pytorch_db == float("inf") else t.psnr_vs_pytorch_db
        size = "" if t.artifact_bytes is None else f"{t.artifact_bytes / 1024:.0f} KiB"
        rows.append(
            [t.backend, t.precision, vs_ref, t.psnr_vs_original_db, t.max_pixel_diff, t.median_ms, t.artifact, size]
        )
    return rows
