"""``ferry upscale``: super-resolve images and folders with a zoo model or an exported ONNX file.

Large images run in tiles: each tile carries ``overlap`` pixels of context on every side, by
default the network's receptive radius (measured), so the stitched result equals the untiled one
up to float rounding while the tensors stay a fixed size.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ferry._inputs import input_file
from ferry._io import atomic_path, is_temp_name, reading, refuse_if_input, remove_stale_temps
from ferry.errors import UserError, describe_os_error, first_line
from ferry.superres import deep16, imaging
from ferry.superres.deep16 import Deep16
from ferry.superres.imaging import IMAGE_SUFFIXES
from ferry.superres.runners import Runner, receptive_radius, session_runner, tiled, torch_runner

if TYPE_CHECKING:
    from ferry.models import LoadedModel

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


@dataclass(frozen=True)
class UpscaleConfig:
    """How to upscale.

    Attributes:
        model: ``zoo:NAME`` or an exported ``.onnx`` file (Y channel in, Y channel out); ``None``:
            the strongest zoo model for the scale (:data:`ferry.zoo.BEST_UPSCALERS`), or the
            tutorial's ESPCN with ``fast``.
        scale: upscale factor (2, 3 or 4, default 3); with no model (or ``zoo:superres``) it picks
            the zoo's model for that factor, with another model it must match the model's.
        fast: without a model, the zoo's ESPCN for the scale: the fastest, weakest upscaler.
        backend: ``auto`` (the fastest runtime and precision that keeps the quality on this
            machine, measured once and cached: :func:`ferry.superres.runtime_choice.choose_runtime`), an ONNX
            backend name, or ``torch`` (eager; zoo models only).
        precision: ``auto``, ``fp32`` or ``int8`` (a cached, gated int8 copy of the model).
        tile: tile side in input pixels (0: the whole image at once).
        overlap: context pixels around each tile; ``None``: the network's receptive radius,
            measured on the runtime (5 for ESPCN, 15 for superres_span), which makes tiled equal
            untiled.
        batch: tiles of the same shape run together in one call, this many at a time.
        overwrite: redo outputs that already exist in a folder run.
        threads: runtime threads (0: the runtime's default).
        writers: threads that finish and encode images while the next ones are decoded and
            upscaled (0: one per usable core).
        retune: measure the ``auto`` choice again instead of reading the cache.
        png_compression: zlib level of PNG outputs (0-9). 4 writes files about 7% larger than
            PIL's default 6 and encodes a 4K image about 2.4x as fast.
    """

    model: str | None = None
    scale: int | None = None
    fast: bool = False
    backend: str = "auto"
    precision: str = "auto"
    tile: int = 0
    overlap: int | None = None
    batch: int = 1
    overwrite: bool = False
    threads: int = 0
    writers: int = 0
    retune: bool = False
    png_compression: int = 4


@dataclass
class FileResult:
    """One input file: what happened to it (a local path, or the file's URI in a ``--ray`` run on
    URIs)."""

    source: Path | str
    target: Path | str
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    size: tuple[int, int] = (0, 0)
    error: str = ""
    warning: str = ""


@dataclass
class UpscaleResult:
    """Every file of a run; truthy when none failed."""

    scale: int
    files: list[FileResult] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    #: the model that ran: ``zoo:NAME`` or an ONNX file's path
    model: str = ""
    #: context pixels around each tile (0 without --tile)
    overlap: int = 0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    def __bool__(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": bool(self),
            "model": self.model,
            "scale": self.scale,
            "overlap": self.overlap,
            "runtime": self.runtime,
            "seconds": self.seconds,
            "files": [
                {
                    "source": str(f.source),
                    "target": str(f.target),
                    "status": f.status,
                    "seconds": f.seconds,
                    "size": list(f.size),
                    "error": f.error,
                    "warning": f.warning,
                }
                for f in self.files
            ],
        }


def resolve_model(cfg: UpscaleConfig) -> str:
    """The model a configuration runs: its own, or the zoo's for the scale (the strongest, or
    ESPCN with ``fast``). ``zoo:superres`` with a scale is ESPCN for that scale."""
    from ferry.zoo import SUPERRES_SCALES, superres_name, upscaler_name

    if cfg.model is not None and cfg.fast:
        raise UserError("--fast picks the zoo's ESPCN: give --fast or --model, not both")
    if cfg.model is not None and not (cfg.scale is not None and cfg.model == "zoo:superres"):
        return cfg.model
    scale = 3 if cfg.scale is None else cfg.scale
    if scale not in SUPERRES_SCALES:
        raise UserError(f"--scale {scale}: the zoo has x{', x'.join(map(str, sorted(SUPERRES_SCALES)))}")
    if cfg.model == "zoo:superres":
        return f"zoo:{superres_name(scale)}"
    return f"zoo:{upscaler_name(scale, fast=cfg.fast)}"


def _check_scale(model: str, scale: int, wanted: int | None) -> None:
    if wanted is not None and wanted != scale:
        raise UserError(f"{model} upscales x{scale}, not x{wanted}; leave out --scale or pick another model")


class YChannelModel:
    """A Y-plane runner and its scale, from a zoo name or an ONNX file, on the runtime asked for
    (or the fastest verified one)."""

    def __init__(self, cfg: UpscaleConfig, on_status: Callable[[str], None] | None = None) -> None:
        from ferry import onnx_file
        from ferry.run import open_session
        from ferry.superres.runtime_choice import PRECISIONS, choose_runtime, int8_copy

        if cfg.precision not in PRECISIONS:
            raise UserError(f"unknown --precision {cfg.precision!r}; known: {', '.join(PRECISIONS)}")
        self.runtime: dict[str, Any] = {}
        model = resolve_model(cfg)
        #: what runs: ``zoo:NAME`` or the ONNX file's path
        self.model = model
        if model.startswith("zoo:"):
            from ferry import zoo

            entry = zoo.get(model.removeprefix("zoo:"))
            if entry.task.get("kind") != "super-resolution" or entry.inputs[0].shape[1] != 1:
                raise UserError(f"{model} is not a Y-channel super-resolution model; use zoo:superres")
            self.scale = int(entry.task["scale"])
            _check_scale(model, self.scale, cfg.scale)

            def build() -> LoadedModel:  # imports torch: a cached export of shipped weights does not
                from ferry.models import load_model

                return load_model(model)

            if cfg.backend == "torch":
                if cfg.precision == "int8":
                    raise UserError("--precision int8 runs on an ONNX backend, not on torch")
                self.runner = torch_runner(build().module)
                self.runtime = {"backend": "torch", "precision": "fp32"}
                return
            from ferry.cache import cached_export, cached_zoo_export

            # the shipped weights' export comes from the cache without importing torch
            path = cached_zoo_export(entry) if entry.trained else cached_export(build())
        else:
            path = Path(model)
            if cfg.backend == "torch":
                raise UserError("--backend torch needs a zoo model; an ONNX file runs on an ONNX backend")
            from ferry.onnx_file import read_metadata

            task = read_metadata(onnx_file.load(path, load_external_data=False)).get("task") or {}
            if task.get("kind") != "super-resolution" or not isinstance(task.get("scale"), int):
                raise UserError(
                    f"{path} was not exported by ferry from a super-resolution model (its ferry.task metadata"
                    " names no kind super-resolution with an integer scale); export it again with ferry export"
                )
            self.scale = int(task["scale"])
            _check_scale(model, self.scale, cfg.scale)
        backend = cfg.backend
        if backend == "auto":
            side = cfg.tile + 2 * (16 if cfg.overlap is None else cfg.overlap)  # the radius is measured later
            choice = choose_runtime(
                path,
                threads=cfg.threads,
                precision=cfg.precision,
                retune=cfg.retune,
                shape=(side, side) if cfg.tile else (720, 1280),
                on_status=on_status,
            )
            backend, path = choice.backend, choice.file
            self.runtime = {
                "backend": choice.backend,
                "precision": choice.precision,
                "speedup_vs_fp32_onnxruntime": (
                    choice.speedup_vs_fp32_onnxruntime
                    if choice.speedup_vs_fp32_onnxruntime == choice.speedup_vs_fp32_onnxruntime
                    else None
                ),
                "cached": choice.cached,
            }
        else:
            if cfg.precision == "int8":
                path = int8_copy(path)
            self.runtime = {"backend": backend, "precision": cfg.precision if cfg.precision != "auto" else "fp32"}
        session = open_session(path, backend, **({"threads": cfg.threads} if cfg.threads else {}))
        self.runner = session_runner(session)

    def tiled_runner(self, cfg: UpscaleConfig) -> tuple[Runner, int]:
        """The runner that ``cfg`` asks for (tiled, batched, checked for the scale) and the tile
        overlap it uses: ``cfg.overlap``, else the network's measured receptive radius."""
        overlap = cfg.overlap if cfg.overlap is not None else 0
        if cfg.tile and cfg.overlap is None:
            radius = receptive_radius(self.runner, limit=_MAX_RADIUS)
            if radius is None:
                raise UserError(
                    f"{self.model} looks further than {_MAX_RADIUS} pixels: tiles would not match the whole-image"
                    " result; give --overlap N (context pixels per tile) or leave out --tile"
                )
            overlap = radius
        return _scaling(tiled(self.runner, cfg.tile, overlap, batch=cfg.batch), self.scale), overlap


#: the widest receptive radius measured for a default overlap
_MAX_RADIUS = 40


@dataclass
class Planes:
    """An image taken apart for the network: Y as an array, the rest kept for the merge."""

    mode: str
    y: np.ndarray
    cb: Image.Image | None = None
    cr: Image.Image | None = None
    alpha: Image.Image | None = None
    icc: bytes | None = None


def split_planes(img: Image.Image | Deep16) -> Planes:
    if isinstance(img, Deep16):
        y, cb, cr, alpha = deep16.split(img)
        return Planes(img.mode, y, cb, cr, alpha, img.icc_profile)
    if img.mode == "I;16":
        y16 = np.asarray(img, dtype=np.float32) / 65535.0
        return Planes("I;16", np.ascontiguousarray(y16[None, None]))
    if img.mode in ("L", "LA"):
        alpha = img.getchannel("A") if img.mode == "LA" else None
        return Planes(img.mode, imaging.y_to_array(img.getchannel("L")), alpha=alpha)
    alpha = img.getchannel("A") if "A" in img.getbands() else None
    yy, cb, cr = imaging.split_ycbcr(img.convert("RGB"))
    return Planes(img.mode, imaging.y_to_array(yy), cb, cr, alpha)


def merge_planes(planes: Planes, y_big: np.ndarray) -> Image.Image | Deep16:
    if planes.mode == "RGB;16":
        assert planes.cb is not None and planes.cr is not None
        return deep16.merge(y_big, planes.cb, planes.cr, planes.alpha, planes.icc)
    if planes.mode == "I;16":
        return Image.fromarray(np.clip(np.rint(y_big[0, 0] * 65535.0), 0, 65535).astype(np.uint16))
    y = imaging.array_to_y(y_big)
    if planes.cb is None or planes.cr is None:
        out = y
        if planes.alpha is not None:
            out = Image.merge("LA", [y, planes.alpha.resize(y.size, Image.Resampling.BICUBIC)])
        return out
    out = imaging.merge_ycbcr(y, planes.cb, planes.cr)
    if planes.alpha is not None:
        out.putalpha(planes.alpha.resize(out.size, Image.Resampling.BICUBIC))
    return out


def upscale_image(img: Image.Image | Deep16, runner: Runner, scale: int) -> Image.Image | Deep16:
    """Super-resolve one image: Y through the network, colour and alpha bicubic.

    Grayscale stays grayscale; RGBA keeps its alpha channel, upscaled bicubically; 16-bit
    grayscale and 16-bit RGB(A) (:class:`~ferry.superres.deep16.Deep16`) stay 16-bit.
    """
    planes = split_planes(img)
    return merge_planes(planes, runner(planes.y))


_WARNING = "ferry_warning"  # carried in the info dict from the reader to the report, never saved


def _gray16(img: Image.Image) -> Image.Image:
    """A 16-bit grayscale image (``I;16`` or 32-bit ``I`` holding 16-bit values) as ``I;16``."""
    arr = np.clip(np.asarray(img, dtype=np.int64), 0, 65535).astype(np.uint16)
    return Image.fromarray(arr)


def open_image(path: Path) -> tuple[Image.Image | Deep16, dict[str, Any]]:
    """Open an image upright (EXIF orientation applied) with the metadata worth carrying over.

    16-bit RGB(A) PNG and TIFF, which Pillow would read at 8 bits, are read at 16 bits.
    """
    from PIL import ImageOps

    if deep16.is_deep_rgb(path):
        deep = deep16.read(path)
        if deep.width == 0 or deep.height == 0:
            raise UserError(f"{path} is an empty image")
        return deep, {}

    try:
        with Image.open(path) as opened:
            opened.load()
            info: dict[str, Any] = {k: opened.info[k] for k in ("icc_profile", "dpi") if k in opened.info}
            exif = opened.getexif()
            img = ImageOps.exif_transpose(opened)
            if exif:
                exif.pop(0x0112, None)  # orientation: already applied to the pixels
                info["exif"] = exif.tobytes()
    except Exception as exc:  # a damaged file: Pillow's parsers raise struct.error, KeyError, TypeError...
        raise UserError(f"cannot read image {path}: {first_line(exc)}") from exc
    if img.width == 0 or img.height == 0:
        raise UserError(f"{path} is an empty image")
    if img.mode.startswith("I"):
        img = _gray16(img)  # 16-bit grayscale keeps its 16 bits through the network
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return img, info


def save_image(img: Image.Image | Deep16, target: Path, info: dict[str, Any], png_compression: int = 6) -> None:
    if isinstance(img, Deep16):
        with atomic_path(target) as tmp:
            try:
                deep16.save(img, tmp, png_compression=png_compression)
            except (ValueError, OSError) as exc:
                if _os_error(exc):
                    raise
                raise UserError(f"cannot write {target}: {exc}; use .png, .jpg, .webp or .tif") from exc
        return
    info = {k: v for k, v in info.items() if k != _WARNING}
    if target.suffix.lower() in (".jpg", ".jpeg") and img.mode in ("RGBA", "LA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")
    if img.mode == "I;16" and target.suffix.lower() not in (".png", ".tif", ".tiff"):
        # JPEG and WebP hold 8 bits: scale down (PIL's own conversion would clip at 255)
        img = Image.fromarray(np.rint(np.asarray(img, dtype=np.float64) / 257.0).astype(np.uint8))
    with atomic_path(target) as tmp:
        options: dict[str, Any] = {"compress_level": png_compression} if target.suffix.lower() == ".png" else {}
        try:
            img.save(tmp, **info, **options)
        except (ValueError, OSError) as exc:
            if _os_error(exc):
                raise  # a full disk, permissions: atomic_path names them
            raise UserError(f"cannot write {target}: {exc}; use .png, .jpg, .webp or .tif") from exc


def _os_error(exc: Exception) -> bool:
    """An error of the operating system (with an errno), not a format that cannot hold the image."""
    return isinstance(exc, OSError) and exc.errno is not None


def upscale_video(
    source: Path,
    target: Path,
    runner: Runner,
    scale: int,
    *,
    on_frame: Callable[[int, int], None] | None = None,
) -> tuple[int, int]:
    """Upscale every frame of a video with PyAV (H.264 out), keeping the frame rate and copying
    the audio packets untouched. Returns the output size; odd sizes are cropped to even (H.264).

    A video that ends before the frames its container declares (a truncated download, a damaged
    file: the decoder often just stops) fails, and nothing is written.

    Raises:
        UserError: for a video that cannot be decoded or ends early, or when PyAV is missing.
    """
    try:
        import av
    except ImportError as exc:
        from ferry.errors import MissingDependencyError

        raise MissingDependencyError("video needs PyAV: pip install 'ferry[video]'") from exc
    try:
        src = av.open(str(source))
    except (av.FFmpegError, OSError) as exc:
        raise UserError(f"cannot read video {source}: {exc}") from exc
    with src:
        if not src.streams.video:
            raise UserError(f"{source} has no video stream")
        vin = src.streams.video[0]
        width, height = (vin.codec_context.width * scale) // 2 * 2, (vin.codec_context.height * scale) // 2 * 2
        vin.thread_type = "AUTO"  # frame-threaded decoding
        with atomic_path(target) as tmp:
            try:
                done, expected = _transcode(src, tmp, runner, (width, height), on_frame)
            except av.FFmpegError as exc:
                raise UserError(f"cannot transcode video {source}: {exc}") from exc
            if done < expected - (max(1, expected // 100) if vin.frames else max(2, expected // 20)):
                raise UserError(
                    f"{source} ended after {done} of {expected} frames: the file is truncated or damaged;"
                    " nothing was written (repair or download it again)"
                )
    return width, height


def _expected_frames(stream: Any) -> int:
    """How many frames a video stream should decode to: the container's count (MP4, MOV), else its
    duration times the frame rate (Matroska's ``DURATION`` tag); 0 when unknown."""
    if stream.frames:
        return int(stream.frames)
    seconds = 0.0
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif (tag := stream.metadata.get("DURATION")) and len(parts := tag.split(":")) == 3:
        try:
            seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
        except ValueError:
            seconds = 0.0
    return int(seconds * float(stream.average_rate)) if seconds and stream.average_rate else 0


def _transcode(
    src: Any, tmp: Path, runner: Runner, size: tuple[int, int], on_frame: Callable[[int, int], None] | None
) -> tuple[int, int]:
    """Decode, upscale and encode every frame of ``src`` into ``tmp``; returns (frames done, frames
    expected)."""
    import av

    width, height = size
    vin = src.streams.video[0]
    ain = src.streams.audio[0] if src.streams.audio else None
    total = _expected_frames(vin)
    with av.open(str(tmp), "w") as out, ThreadPoolExecutor(1, "ferry-encode") as encoder:
        vout = out.add_stream("libx264", rate=vin.average_rate or 25)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": "18"}
        aout = out.add_stream_from_template(ain) if ain is not None else None
        streams = [vin] + ([ain] if ain is not None else [])
        # One encoder thread merges colour, encodes and muxes in order (audio too, so that the
        # container is only touched from one thread) while the next frame is decoded and upscaled.
        inflight: deque[Future[None]] = deque()

        def encode(planes: Planes, y_big: np.ndarray, pts: int | None, time_base: Any) -> None:
            merged = merge_planes(planes, y_big)
            assert isinstance(merged, Image.Image)  # video frames are 8-bit RGB
            big = merged.crop((0, 0, width, height))
            new = av.VideoFrame.from_image(big)
            new.pts, new.time_base = pts, time_base
            out.mux(vout.encode(new))

        def mux_audio(packet: Any) -> None:
            packet.stream = aout
            out.mux(packet)

        done = 0
        for packet in src.demux(*streams):
            if packet.stream is ain and aout is not None:
                if packet.dts is not None:
                    inflight.append(encoder.submit(mux_audio, packet))
                continue
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame):
                    continue
                planes = split_planes(frame.to_image())
                y_big = runner(planes.y)
                inflight.append(encoder.submit(encode, planes, y_big, frame.pts, frame.time_base))
                while len(inflight) > 2:
                    inflight.popleft().result()
                done += 1
                if on_frame is not None:
                    on_frame(done, total)
        while inflight:
            inflight.popleft().result()
        out.mux(vout.encode(None))
    return done, total


def folder_jobs(source: Path, output: Path, scale: int) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs. A folder is walked recursively, leaving out ferry's temporary files
    and the output folder when it lies inside the input one (a rerun must not upscale its own
    results again)."""
    if source.is_file():
        if os.path.isdir(output):
            output = output / f"{source.stem}_x{scale}{source.suffix}"
        yield source, output
        return
    real_source, real_output = Path(os.path.realpath(source)), Path(os.path.realpath(output))
    skip = real_output.relative_to(real_source).parts if real_source in real_output.parents else None
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if skip is not None and relative.parts[: len(skip)] == skip:
            continue
        if is_temp_name(path.name) or any(is_temp_name(part) for part in relative.parts[:-1]):
            continue
        if path.is_file() and path.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
            yield path, output / relative


def validate_paths(src: Path, out: Path, cfg: UpscaleConfig) -> None:
    """Refuse, before a model is built, what cannot work; ``out`` may not be an input."""
    if not os.path.exists(src):
        raise UserError(f"input not found: {src}")
    if not src.is_dir():  # a FIFO or /dev/zero would be read forever
        input_file(src, "image or video", hint="give an image, a video or a folder of them")
    if src.is_file() and src.suffix.lower() not in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
        raise UserError(
            f"unsupported input {src}: give an image ({', '.join(IMAGE_SUFFIXES)}),"
            f" a video ({', '.join(VIDEO_SUFFIXES)}) or a folder"
        )
    if src.is_dir() and os.path.isfile(out):
        raise UserError(f"{out} is a file; give a folder as the output of a folder run")
    refuse_if_input(out)  # the photo itself, or the input folder: outputs would replace originals
    validate_config(cfg)
    if src.is_dir() and not any(True for _ in folder_jobs(src, out, 0)):
        raise UserError(f"no images or videos in {src}")


def validate_config(cfg: UpscaleConfig) -> None:
    """Refuse the settings that cannot work (negative tiles, batches without tiles...)."""
    if cfg.tile < 0 or (cfg.overlap is not None and cfg.overlap < 0):
        raise UserError("--tile and --overlap must not be negative")
    if cfg.batch < 1:
        raise UserError(f"--batch must be at least 1, got {cfg.batch}")
    if cfg.writers < 0:
        raise UserError(f"--writers must be 0 (one per core) or more, got {cfg.writers}")
    if cfg.batch > 1 and not cfg.tile:
        raise UserError("--batch groups the tiles of an image: give --tile too")
    if not 0 <= cfg.png_compression <= 9:
        raise UserError("--png-compression must be 0 (none) to 9 (smallest, slowest)")


def upscale(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: UpscaleConfig | None = None,
    *,
    on_file: Callable[[FileResult, int, int], None] | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> UpscaleResult:
    """Super-resolve an image, a video, or every image and video of a folder (recursively,
    mirrored into ``output``), on the fastest verified runtime unless ``config.backend`` names one.

    A file that cannot be read or written is reported and skipped; the others go on. Outputs
    are written atomically; existing ones are skipped unless ``config.overwrite``. Inputs are
    never written over: an output that is an input (or the input folder) is refused, an output
    folder inside the input folder is left out of the walk. Temporary files left in the output
    folders by a killed run are removed. Paths are local: URIs (``s3://...``) are for
    :func:`~ferry.superres.distributed.upscale_on_ray`.

    Example:
        >>> ferry.upscale("photo.jpg", "photo_x3.png").files[0].size
        (1353, 900)
    """
    from ferry._uri import display_name, is_uri

    cfg = config or UpscaleConfig()
    for where in (source, output):
        if is_uri(where):
            raise UserError(
                f"{display_name(str(where))}: URIs need --ray ADDRESS (--ray local: Ray on this machine;"
                " ferry.upscale_on_ray in Python); without --ray, INPUT and -o are local paths"
            )
    src, out = Path(source), Path(output)
    with reading(src, None if cfg.model is None or cfg.model.startswith("zoo:") else cfg.model):
        validate_paths(src, out, cfg)
        start = time.perf_counter()
        model = YChannelModel(cfg, on_status=on_status)
        runner, overlap = model.tiled_runner(cfg)
        result = UpscaleResult(scale=model.scale, runtime=model.runtime, model=model.model, overlap=overlap)
        jobs = list(folder_jobs(src, out, model.scale))
        for folder in sorted({target.parent for _, target in jobs}):
            remove_stale_temps(folder)
        run_jobs(jobs, runner, model.scale, cfg, result, on_file=on_file, on_frame=on_frame, folder=src.is_dir())
        result.seconds = time.perf_counter() - start
    return result


def _finish(
    planes: Planes, y_big: np.ndarray, target: Path, info: dict[str, Any], png_compression: int
) -> tuple[int, int]:
    big = merge_planes(planes, y_big)
    save_image(big, target, info, png_compression)
    return big.size


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _video_job(
    path: Path,
    target: Path,
    runner: Runner,
    scale: int,
    on_frame: Callable[[int, int], None] | None,
    began: float,
) -> FileResult:
    """One video through its own decode/upscale/encode pipeline, as a file result."""
    try:
        size = upscale_video(path, target, runner, scale, on_frame=on_frame)
        return FileResult(path, target, "done", time.perf_counter() - began, size)
    except (UserError, OSError) as exc:
        return _failed(path, target, began, exc)


def _failed(path: Path, target: Path, began: float, exc: UserError | OSError) -> FileResult:
    """A file that failed with a user error or an OS error (named with its path): recorded, and
    the run goes on. An OS error without an errno is a bug, and raised again."""
    if isinstance(exc, OSError) and exc.errno is None:
        raise exc
    error = str(exc) if isinstance(exc, UserError) else describe_os_error(exc)
    return FileResult(path, target, "failed", time.perf_counter() - began, error=error)


def _scaling(runner: Runner, scale: int) -> Runner:
    """``runner`` that fails a file when the network does not return ``scale`` times its input:
    a model whose metadata claims another scale would otherwise write a picture of the wrong size."""

    def run(y: np.ndarray) -> np.ndarray:
        big = runner(y)
        want = tuple(scale * d for d in y.shape[-2:])
        if tuple(big.shape[-2:]) != want:
            raise UserError(
                f"the model returned {big.shape[-2]}x{big.shape[-1]} for a {y.shape[-2]}x{y.shape[-1]} image,"
                f" not x{scale} as its ferry.task metadata says; export it again with ferry export"
            )
        return big

    return run


def _upscaled(
    decoding: Future[tuple[Image.Image | Deep16, dict[str, Any]]], runner: Runner
) -> tuple[Any, Any, dict[str, Any]]:
    """A decoded image's planes, its Y plane through the network, and what decoding said of it."""
    img, info = decoding.result()
    planes = split_planes(img)
    return planes, runner(planes.y), info


def run_jobs(
    jobs: list[tuple[Path, Path]],
    runner: Runner,
    scale: int,
    cfg: UpscaleConfig,
    result: UpscaleResult,
    *,
    on_file: Callable[[FileResult, int, int], None] | None,
    on_frame: Callable[[int, int], None] | None,
    folder: bool,
) -> None:
    """Upscale every job in order, overlapping the stages: a reader thread decodes the next
    images while the runtime upscales this one, and writer threads merge colour and encode the
    previous ones. Files are reported in job order."""
    from ferry.machine import machine

    writers = cfg.writers or int(machine()["usable_cores"])
    total = len(jobs)
    # the images to decode ahead of time (not skipped, not videos)
    skip = [folder and not cfg.overwrite and os.path.exists(t) for _, t in jobs]  # done by an earlier run
    todo = [k for k, (p, _) in enumerate(jobs) if not skip[k] and not _is_video(p)]
    pending: deque[tuple[int, float, Future[tuple[int, int]] | FileResult]] = deque()
    warnings: dict[int, str] = {}

    def report(item: FileResult) -> None:
        result.files.append(item)
        if on_file is not None:
            on_file(item, len(result.files), total)

    def settle(limit: int) -> None:
        while len(pending) > limit:
            k, began, work = pending.popleft()
            path, target = jobs[k]
            if isinstance(work, FileResult):
                report(work)
                continue
            try:
                size = work.result()
                done = FileResult(path, target, "done", time.perf_counter() - began, size)
                done.warning = warnings.get(k, "")
                report(done)
            except (UserError, OSError) as exc:
                report(_failed(path, target, began, exc))

    with ThreadPoolExecutor(1, "ferry-read") as reader, ThreadPoolExecutor(writers, "ferry-write") as writer:
        decoded: dict[int, Future[tuple[Image.Image | Deep16, dict[str, Any]]]] = {}

        def prefetch(after: int) -> None:
            for k in [k for k in todo if k > after][:2]:
                if k not in decoded:
                    decoded[k] = reader.submit(open_image, jobs[k][0])

        for k, (path, target) in enumerate(jobs):
            began = time.perf_counter()
            if skip[k]:
                pending.append((k, began, FileResult(path, target, "skipped")))
                continue
            if _is_video(path):
                settle(0)  # a video has its own pipeline; let it have the machine
                pending.append((k, began, _video_job(path, target, runner, scale, on_frame, began)))
                settle(0)
                continue
            if k not in decoded:
                decoded[k] = reader.submit(open_image, path)
            prefetch(k)
            try:
                planes, y_big, info = _upscaled(decoded.pop(k), runner)
                if info.get(_WARNING):
                    warnings[k] = info[_WARNING]
            except UserError as exc:
                pending.append(
                    (k, began, FileResult(path, target, "failed", time.perf_counter() - began, error=str(exc)))
                )
                settle(writers)
                continue
            pending.append((k, began, writer.submit(_finish, planes, y_big, target, info, cfg.png_compression)))
            settle(writers)  # bounded: at most `writers` finished images wait in memory
        settle(0)
