"""The super-resolution task: how the generic stages serve Y-channel upscalers.

Registered through the ``ferry.tasks`` entry point (``pyproject.toml``). Each hook declines a
model it does not serve (an RGB super-resolution model such as ``zoo:srresnet``), and the stage
falls back to its generic behaviour.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np
import onnx
from PIL import Image

from ferry.errors import MissingDependencyError, UserError
from ferry.models import LoadedModel
from ferry.tasks import Reopen, RunFn, Task, TaskInfo

KIND = "super-resolution"


def _y_channel(info: TaskInfo) -> bool:
    return info.kind == KIND and info.preprocess == "y" and info.scale is not None


def quality_gate(proto: onnx.ModelProto, original: RunFn, optimized: RunFn, max_drop: float) -> Any:
    """PSNR on the gate photos (chelsea, coffee): optimized vs original, both against ground truth."""
    from ferry import onnx_file
    from ferry.images import gate_photos
    from ferry.optimize import Gate
    from ferry.superres.scoring import evaluate

    info = TaskInfo.from_dict(onnx_file.stored_task(proto))
    if not _y_channel(info):
        return None
    assert info.scale is not None
    name = onnx_file.input_names(proto)[0]
    images = gate_photos()

    def runner(run: RunFn) -> Any:
        return lambda y: np.asarray(run({name: y})[0])

    before = evaluate(runner(original), images, scale=info.scale)
    after = evaluate(runner(optimized), images, scale=info.scale)
    drop = before.mean_model - after.mean_model
    return Gate(
        metric="psnr_drop_db",
        value=drop,
        limit=max_drop,
        passed=drop <= max_drop,
        details={
            "psnr_original_db": before.mean_model,
            "psnr_optimized_db": after.mean_model,
            "images": [s.name for s in before.images],
        },
    )


def calibration_images(info: TaskInfo) -> list[tuple[str, Image.Image]] | None:
    """The bundled training photos (never the validation photos the gate uses)."""
    if not _y_channel(info):
        return None
    from ferry.superres.datasets import training_images

    return training_images()


def photo_report(
    model: LoadedModel,
    sessions: Mapping[str, Any],
    folder: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    reopen: Reopen,
) -> Any:
    """Every runtime upscales the photos through the YCbCr pipeline, compared with PyTorch."""
    info = TaskInfo.from_dict(model.task)
    if not _y_channel(info) or not model.inputs:
        return None
    assert info.scale is not None
    from ferry.images import find_images, load_image
    from ferry.superres.photos import compare_on_photos
    from ferry.superres.pipeline import torch_runner

    pictures = [(p.name, load_image(p)) for p in find_images(folder)]
    dims = model.inputs[0].dims

    def at_size(name: str, size: tuple[int, int]) -> Any:
        """A static-shape runtime converted at one photo's low-resolution size."""
        sizes = {d.name: v for d, v in zip(dims[2:], size, strict=True) if d.name}
        if dims[0].name:
            sizes[dims[0].name] = 1
        return reopen(name, sizes)

    return compare_on_photos(
        torch_runner(model.module),
        sessions,
        pictures,
        scale=info.scale,
        artifacts={name: s.artifact for name, s in sessions.items() if s.artifact is not None},
        reopen=at_size,
    )


def wrap_io(model: LoadedModel) -> LoadedModel:
    """The uint8 RGB-in, RGB-out pipeline graph around a Y-channel model."""
    from ferry.superres.rgb_io import rgb_io_model

    return rgb_io_model(model)


def web_page(ctx: Any) -> list[str]:
    """The web package: the RGB-I/O model and a page that upscales a picked photo, offline."""
    from ferry import _browser, onnx_file
    from ferry.export import export
    from ferry.models import named_inputs
    from ferry.superres.rgb_io import RGB_IO, rgb_io_model

    dist = _browser.ort_web_dist()
    if dist is None:
        raise MissingDependencyError(f"the web target: {_browser.ORT_WEB_HINT}")
    info = TaskInfo.from_dict(ctx.task)
    model_path = ctx.folder / "model.onnx"
    if info.io == RGB_IO:
        shutil.copyfile(ctx.onnx_path, model_path)
    elif ctx.loaded is not None and info.kind == KIND:
        # The page hands the model the picked image's RGB bytes: the colour conversion, the
        # network and the chroma resize ship inside the graph, none of it is rewritten in JS.
        rgb = rgb_io_model(ctx.loaded)
        export(rgb, model_path)
        ctx.specs = named_inputs(rgb, rgb.inputs)
        ctx.task = onnx_file.stored_task(onnx_file.load(model_path, load_external_data=False)) or rgb.task
        ctx.output_names = tuple(rgb.outputs)
    else:
        raise UserError(
            "the web target builds an upscaling page: give a Y-channel super-resolution model (zoo:superres...)"
            " or an ONNX file exported with --rgb-io"
        )
    files = _browser.copy_runtime(dist, ctx.folder)
    page = resources.files("ferry.superres") / "assets" / "web"
    for name in ("index.html", "app.js"):
        (ctx.folder / name).write_text(page.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    ctx.runtime_version = _browser.ort_web_version(dist)
    return ["model.onnx", *files, "index.html", "app.js"]


def serve_backend(onnx_path: str | os.PathLike[str], threads: int, on_status: Any) -> str | None:
    """``ferry serve --backend auto``: ``ferry upscale``'s runtime choice (measured once, cached),
    kept to fp32 arithmetic so that the inference endpoint returns the model's numbers."""
    from ferry import onnx_file
    from ferry.superres.runtime_choice import choose_runtime

    if not _y_channel(TaskInfo.from_dict(onnx_file.stored_task(onnx_file.load(onnx_path, load_external_data=False)))):
        return None
    choice = choose_runtime(onnx_path, threads=threads, precision="fp32", on_status=on_status)
    if choice.precision == "fp32":
        return choice.backend
    exact = [c for c in choice.candidates if c.verified and c.precision == "fp32" and c.median_ms is not None]
    return min(exact, key=lambda c: c.median_ms or 0.0).backend if exact else "onnxruntime"


def serve_endpoints(ctx: Any) -> Any:
    """``ferry serve``: ``POST /upscale`` (an image in, the upscaled image out) and a page at ``/``."""
    if not _y_channel(ctx.info):
        return None
    from ferry.superres.serve import endpoints

    return endpoints(ctx)


TASK = Task(
    name=KIND,
    summary="upscale photos: the tutorial's YCbCr pipeline around a Y-channel network",
    io_name="rgb-uint8",
    wrap_io=wrap_io,
    quality_gate=quality_gate,
    calibration_images=calibration_images,
    photo_report=photo_report,
    web_page=web_page,
    serve_backend=serve_backend,
    serve_endpoints=serve_endpoints,
)
