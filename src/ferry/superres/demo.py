"""``ferry demo``: the whole tutorial pipeline on the bundled cat photo, with a report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from ferry import zoo
from ferry._io import atomic_path, write_json_atomic
from ferry.bench._timing import median_time
from ferry.cache import cached_zoo_export
from ferry.check import CheckResult, check
from ferry.export import ExportResult, export
from ferry.models import load_model
from ferry.report import Raw, image_tag, table, verdict, write_html
from ferry.run import open_session
from ferry.superres import datasets, imaging
from ferry.superres.pipeline import Runner, session_runner, super_resolve, torch_runner
from ferry.superres.scoring import score_image
from ferry.verify import PARITY_HEADERS, VerifyConfig, VerifyReport, parity_rows, verify
from ferry.zoo import BEST_UPSCALERS

T = TypeVar("T")
#: shown beside the tutorial's ESPCN: what ``ferry upscale`` runs by default at x3
STRONGER_MODEL = f"zoo:{BEST_UPSCALERS[3]}"

# A crop of the cat's face (in the ground-truth image's coordinates) for the zoomed comparison.
_FACE = (150, 60, 330, 180)


@dataclass
class DemoResult:
    """Everything ``ferry demo`` produced; truthy when every step passed and ferry beat bicubic."""

    out_dir: Path
    files: dict[str, Path]
    export: ExportResult
    check: CheckResult
    verify: VerifyReport
    psnr_ferry: float
    psnr_bicubic: float
    max_pixel_diff_vs_torch: int
    timings: dict[str, float] = field(default_factory=dict)
    #: the strongest zoo model on the same cat, beside the tutorial's ESPCN: name and PSNR
    stronger_model: str = ""
    psnr_stronger: float = float("nan")

    @property
    def gain(self) -> float:
        return self.psnr_ferry - self.psnr_bicubic

    @property
    def ok(self) -> bool:
        return bool(self.check) and bool(self.verify) and self.gain > 0

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "out_dir": str(self.out_dir),
            "files": {k: str(v) for k, v in self.files.items()},
            "export": self.export.to_dict(),
            "check": self.check.to_dict(),
            "verify": self.verify.to_dict(),
            "super_resolution": {
                "image": "chelsea (scikit-image), 450x300, downscaled x3 with PIL bicubic, then upscaled x3",
                "measure": "PSNR on the Y channel, 3 px border cropped, against the 450x300 original",
                "psnr_y_ferry_db": self.psnr_ferry,
                "psnr_y_bicubic_db": self.psnr_bicubic,
                "gain_db": self.gain,
                "max_pixel_diff_onnxruntime_vs_pytorch": self.max_pixel_diff_vs_torch,
                "stronger_model": self.stronger_model,
                "psnr_y_stronger_db": self.psnr_stronger,
                "gain_stronger_db": self.psnr_stronger - self.psnr_bicubic,
            },
            "timings_seconds": self.timings,
        }


def _save_png(img: Image.Image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def run_demo(
    out_dir: str | os.PathLike[str] = "ferry-demo",
    *,
    step: Callable[[str], None] | None = None,
) -> DemoResult:
    """Export, check, verify and run ``zoo:superres`` on the bundled cat, and ``ferry upscale``'s
    stronger default model beside it; write images and a report.

    Args:
        out_dir: folder for the ONNX file, images, ``report.html`` and ``report.json``.
        step: called with a short description as each stage starts (progress display).

    Example:
        >>> result = ferry.run_demo("ferry-demo")
        >>> result.gain > 1.5
        True
    """

    def say(msg: str) -> None:
        if step is not None:
            step(msg)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    files: dict[str, Path] = {}

    say("exporting zoo:superres to ONNX (dynamic batch, height, width)")
    model = load_model("zoo:superres")
    exported = export(model, out / "superres.onnx")
    files["onnx"] = exported.path
    timings["export"] = exported.seconds

    say("checking the ONNX file")
    checked = _timed(timings, "check", lambda: check(exported.path))

    say("verifying ONNX Runtime against PyTorch at three shapes")
    onnxruntime_only = VerifyConfig(backends=("onnxruntime",))
    verified = _timed(timings, "verify", lambda: verify(model, exported.path, config=onnxruntime_only))

    say("super-resolving the cat with ONNX Runtime")
    ort_runner = session_runner(open_session(exported.path))
    eager: Runner = torch_runner(model.module)
    images, psnr_ferry, psnr_bicubic, max_diff = _upscale_cat(ort_runner, eager, int(model.task["scale"]))

    say(f"super-resolving the cat with the stronger {STRONGER_MODEL} on ONNX Runtime")
    strong_cat, psnr_strong = _upscale_small(images[0], images[3], STRONGER_MODEL)

    say("timing ONNX Runtime and PyTorch eager on the full-size cat (x3)")
    cat_x3 = super_resolve(datasets.chelsea(), ort_runner)
    timings |= _time_runtimes(ort_runner, eager)

    say("writing images and the report")
    zoom = _zoom(images, psnr_ferry, psnr_bicubic)
    zoom.insert(3, (f"{STRONGER_MODEL} {psnr_strong:.2f} dB", strong_cat.crop(_FACE)))
    comparison = imaging.side_by_side(zoom, height=360)
    for key, img in zip(("input", "bicubic", "ferry", "original"), images, strict=True):
        files[key] = _save_png(img, out / f"{key}.png")
    files["stronger"] = _save_png(strong_cat, out / "stronger.png")
    files["comparison"] = _save_png(comparison, out / "comparison.png")
    files["cat_x3"] = _save_png(cat_x3, out / "cat_x3.png")

    demo = DemoResult(
        out_dir=out,
        files=files,
        export=exported,
        check=checked,
        verify=verified,
        psnr_ferry=psnr_ferry,
        psnr_bicubic=psnr_bicubic,
        max_pixel_diff_vs_torch=max_diff,
        timings=timings,
        stronger_model=STRONGER_MODEL,
        psnr_stronger=psnr_strong,
    )
    files["report_json"] = out / "report.json"
    files["report_html"] = out / "report.html"
    write_json_atomic(files["report_json"], demo.to_dict())
    _write_html(demo, zoom, cat_x3)
    return demo


def _upscale_cat(
    ort_runner: Runner, eager: Runner, scale: int
) -> tuple[tuple[Image.Image, Image.Image, Image.Image, Image.Image], float, float, int]:
    """The cat downscaled, upscaled bicubically and by ONNX Runtime, and the original; the PSNR of
    both upscales (as the model card measures: Y planes, 3 px border) and the largest pixel
    difference between ONNX Runtime's and PyTorch's pictures."""
    original = imaging.crop_to_multiple(datasets.chelsea(), scale)
    small = imaging.downscale(original, scale)
    bicubic = imaging.upscale_bicubic(small, scale)
    result = super_resolve(small, ort_runner)
    result_torch = super_resolve(small, eager)
    max_diff = int(np.abs(np.asarray(result, np.int16) - np.asarray(result_torch, np.int16)).max())
    score = score_image("chelsea", original, ort_runner, scale=scale)
    return (small, bicubic, result, original), score.psnr_model, score.psnr_bicubic, max_diff


def _timed(timings: dict[str, float], key: str, stage: Callable[[], T]) -> T:
    """Run one stage and record its wall time under ``key``."""
    start = time.perf_counter()
    value = stage()
    timings[key] = time.perf_counter() - start
    return value


def _upscale_small(small: Image.Image, original: Image.Image, model: str) -> tuple[Image.Image, float]:
    """The downscaled cat upscaled by a zoo model on ONNX Runtime, and its PSNR as the model card
    measures it."""
    # the cache entry ``ferry upscale`` reads, so the demo's export serves its later runs too
    runner = session_runner(open_session(cached_zoo_export(zoo.get(model.removeprefix("zoo:")))))
    scale = original.width // small.width
    score = score_image("chelsea", original, runner, scale=scale)
    return super_resolve(small, runner), score.psnr_model


def _zoom(
    images: tuple[Image.Image, Image.Image, Image.Image, Image.Image], psnr_ferry: float, psnr_bicubic: float
) -> list[tuple[str, Image.Image]]:
    """The cat's face from each picture, labelled, for the side-by-side comparison."""
    small, bicubic, result, original = images
    return [
        ("input (x3 nearest)", small.resize(original.size, Image.Resampling.NEAREST).crop(_FACE)),
        (f"bicubic {psnr_bicubic:.2f} dB", bicubic.crop(_FACE)),
        (f"ESPCN (zoo:superres) {psnr_ferry:.2f} dB", result.crop(_FACE)),
        ("original", original.crop(_FACE)),
    ]


def _time_runtimes(ort_runner: Runner, eager: Runner) -> dict[str, float]:
    """Median time of the network on the full-size cat's Y plane, ONNX Runtime and eager."""
    y = imaging.y_to_array(imaging.split_ycbcr(datasets.chelsea())[0])
    for _ in range(2):  # warm-up
        ort_runner(y)
        eager(y)
    ort = median_time(lambda: ort_runner(y), 5)
    torch_eager = median_time(lambda: eager(y), 5)
    return {"onnxruntime_inference": ort, "pytorch_eager_inference": torch_eager, "speedup_vs_eager": torch_eager / ort}


def _write_html(demo: DemoResult, zoom: list[tuple[str, Image.Image]], cat_x3: Image.Image) -> None:
    ex = demo.export
    steps = table(
        ["step", "verdict", "detail"],
        [
            [
                "export",
                Raw(verdict(bool(ex))),
                f"{ex.exporter} exporter, opset {ex.opset}, {ex.size_bytes:,} bytes,"
                f" inputs {', '.join(str(s) for s in ex.inputs)}",
            ],
            ["check", Raw(verdict(bool(demo.check))), demo.check.message],
            [
                "verify",
                Raw(verdict(bool(demo.verify))),
                f"{len(demo.verify.shapes)} shapes x {demo.verify.samples} samples",
            ],
            ["super-resolution", Raw(verdict(demo.gain > 0)), f"{demo.gain:+.2f} dB PSNR over bicubic on the cat"],
        ],
    )
    sr = table(
        ["method", "PSNR (Y, 3 px border) dB"],
        [
            ["PIL bicubic", demo.psnr_bicubic],
            ["ferry (zoo:superres on ONNX Runtime)", demo.psnr_ferry],
            ["gain", demo.gain],
            [f"ferry ({demo.stronger_model}, ferry upscale's default, on ONNX Runtime)", demo.psnr_stronger],
            ["gain", demo.psnr_stronger - demo.psnr_bicubic],
        ],
    )
    sr += (
        f"<p>Largest pixel difference between the ONNX Runtime and the PyTorch result:"
        f" {demo.max_pixel_diff_vs_torch} grey level(s).</p>"
    )
    figures = "".join(image_tag(img, caption, width=190) for caption, img in zoom)
    timings = table(["stage", "seconds"], [[k, v] for k, v in demo.timings.items() if k != "speedup_vs_eager"])
    timings += (
        f"<p>ONNX Runtime ran the full-size cat {demo.timings['speedup_vs_eager']:.2f}x as fast as PyTorch eager.</p>"
    )
    write_html(
        demo.files["report_html"],
        "ferry demo: super-resolution x3 from PyTorch to ONNX Runtime",
        [
            ("Pipeline", steps),
            ("Parity with PyTorch eager", table(PARITY_HEADERS, parity_rows(demo.verify))),
            ("Super-resolution quality", sr),
            ("The cat's face, zoomed", figures),
            (
                "The whole cat, x3 (ONNX Runtime)",
                image_tag(
                    cat_x3.resize((cat_x3.width // 2, cat_x3.height // 2)), "1353x900 result, shown at half size"
                ),
            ),
            ("Timings", timings),
        ],
        subtitle="zoo:superres (ESPCN, x3) on chelsea from scikit-image;",
    )
