"""Package target: a static web page that upscales a picked image with ONNX Runtime Web, offline."""

from __future__ import annotations

import shutil
from importlib import resources

from ferry.errors import MissingDependencyError, UserError
from ferry.targets.base import BuildContext, Target, write_readme


def build_web(ctx: BuildContext) -> list[str]:
    from ferry import onnx_file, web
    from ferry.export import export
    from ferry.models import RGB_IO, named_inputs, rgb_io_model
    from ferry.onnx_file import read_metadata

    dist = web.ort_web_dist()
    if dist is None:
        raise MissingDependencyError(f"the web target: {web.ORT_WEB_HINT}")
    model_path = ctx.folder / "model.onnx"
    if ctx.task.get("io") == RGB_IO:
        shutil.copyfile(ctx.onnx_path, model_path)
    elif ctx.loaded is not None and ctx.task.get("kind") == "super-resolution":
        # The page hands the model the picked image's RGB bytes: the colour conversion, the
        # network and the chroma resize ship inside the graph, none of it is rewritten in JS.
        rgb = rgb_io_model(ctx.loaded)
        export(rgb, model_path)
        ctx.specs = named_inputs(rgb, rgb.inputs)
        ctx.task = dict(read_metadata(onnx_file.load(model_path, load_external_data=False)).get("task") or rgb.task)
        ctx.output_names = tuple(rgb.outputs)
    else:
        raise UserError(
            "the web target builds an upscaling page: give a Y-channel super-resolution model (zoo:superres...)"
            " or an ONNX file exported with --rgb-io"
        )
    files = web.copy_runtime(dist, ctx.folder)
    page = resources.files("ferry") / "assets" / "web"
    for name in ("index.html", "app.js"):
        (ctx.folder / name).write_text(page.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
    ctx.runtime_version = web.ort_web_version(dist)
    ctx.notes.append(
        "Serve the folder over HTTP (any static server; `python -m http.server` works) and open index.html:"
        " browsers do not run WebAssembly from file:// pages. Nothing is fetched from a CDN."
    )
    ctx.notes.append(
        "With Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp headers,"
        " ONNX Runtime Web uses several threads; without them it runs on one."
    )
    write_readme(
        ctx,
        "ONNX Runtime Web (WebAssembly)",
        [
            '<script src="ort.wasm.min.js"></script>',
            "ort.env.wasm.wasmPaths = './';",
            "const session = await ort.InferenceSession.create('model.onnx', {executionProviders: ['wasm']});",
            "const rgb = new ort.Tensor('uint8', rgbBytes, [height, width, 3]);",
            "const { upscaled } = await session.run({ rgb });  // uint8 [scale*height, scale*width, 3]",
        ],
    )
    return ["model.onnx", *files, "index.html", "app.js", "README.md"]


TARGET = Target(
    "web",
    "static page: uint8 RGB model + ONNX Runtime Web (wasm) + index.html, offline",
    "ONNX Runtime Web",
    "web",
    "onnx",
    build_web,
)
