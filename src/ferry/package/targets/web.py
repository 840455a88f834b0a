"""Package target: a static web page running the model with ONNX Runtime Web, offline.

The page itself comes from the model's task (:attr:`ferry.tasks.Task.web_page`): for
super-resolution, one that upscales a picked photo.
"""

from __future__ import annotations

from ferry.errors import UserError
from ferry.package.targets.base import BuildContext, Target, write_readme


def build_web(ctx: BuildContext) -> list[str]:
    from ferry import tasks

    _, task = tasks.of(ctx.task)
    if task is None or task.web_page is None:
        raise UserError(
            "the web target builds an upscaling page: give a Y-channel super-resolution model (zoo:superres...)"
            " or an ONNX file exported with --rgb-io"
        )
    files = task.web_page(ctx)
    ctx.notes.append(
        "Serve the folder over HTTP and open index.html: browsers do not run WebAssembly from file:// pages."
        " For this machine only: `python -m http.server --bind 127.0.0.1 8000` in this folder, then open"
        " http://127.0.0.1:8000/ (without `--bind` it listens on every network interface)."
        " Nothing is fetched from a CDN."
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
    return [*files, "README.md"]


TARGET = Target(
    "web",
    "static page: uint8 RGB model + ONNX Runtime Web (wasm) + index.html, offline",
    "ONNX Runtime Web",
    "web",
    "onnx",
    build_web,
)
