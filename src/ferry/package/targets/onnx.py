"""Package target: the ONNX file itself, for ONNX Runtime on desktops, servers and full mobile builds."""

from __future__ import annotations

import shutil

from ferry.package.targets.base import BuildContext, Target, write_readme


def build_onnx(ctx: BuildContext) -> list[str]:
    shutil.copyfile(ctx.onnx_path, ctx.folder / "model.onnx")
    write_readme(
        ctx,
        "ONNX Runtime (desktop, server, Android/iOS full builds)",
        [
            "import onnxruntime as ort",
            'session = ort.InferenceSession("model.onnx")',
            "outputs = session.run(None, {" + ", ".join(f'"{s.name}": {s.name}_array' for s in ctx.specs) + "})",
        ],
    )
    return ["model.onnx", "README.md"]


TARGET = Target("onnx", "the ONNX file itself", "ONNX Runtime", "core", "onnxruntime", build_onnx)
