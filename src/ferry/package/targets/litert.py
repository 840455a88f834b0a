"""Package target: LiteRT (TensorFlow Lite): a .tflite converted from the PyTorch module."""

from __future__ import annotations

from dataclasses import replace

from ferry.package.targets.base import BuildContext, Target, converting, write_readme
from ferry.specs import Dim


def build_litert(ctx: BuildContext) -> list[str]:
    from ferry.convert.litert import tflite_from_module

    assert ctx.loaded is not None
    with converting("litert", "litert-torch"):
        flatbuffer = tflite_from_module(ctx.loaded.module, ctx.specs)
    (ctx.folder / "model.tflite").write_bytes(flatbuffer)
    dynamic = [f"{s.name}[{a}]" for s in ctx.specs for a in s.dynamic_axes]
    # The flatbuffer has static shapes: the manifest must not promise dynamic axes.
    ctx.specs = tuple(replace(s, dims=tuple(Dim(d.size) for d in s.dims)) for s in ctx.specs)
    if dynamic:
        ctx.notes.append(
            f"LiteRT programs have static shapes: {', '.join(dynamic)} are fixed at"
            f" {'; '.join(f'{s.name} {list(s.shape)}' for s in ctx.specs)}."
            " Package again with --input for another size (or tile the image to this size)."
        )
    ctx.extra["static_shapes"] = True
    write_readme(
        ctx,
        "LiteRT (TensorFlow Lite)",
        [
            "// Kotlin (com.google.ai.edge.litert:litert)",
            'val interpreter = Interpreter(FileUtil.loadMappedFile(context, "model.tflite"))',
            "interpreter.run(inputBuffer, outputBuffer)",
            "# Python (ai-edge-litert)",
            'interpreter = Interpreter(model_path="model.tflite"); interpreter.allocate_tensors()',
        ],
    )
    return ["model.tflite", "README.md"]


TARGET = Target(
    "litert",
    ".tflite converted by litert-torch (static shapes)",
    "LiteRT",
    "litert",
    "litert_torch",
    build_litert,
    needs_module=True,
)
