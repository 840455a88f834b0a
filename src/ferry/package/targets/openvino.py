"""Package target: OpenVINO IR."""

from __future__ import annotations

import os

from ferry.package.targets.base import BuildContext, Target, converting, write_readme


def build_openvino(ctx: BuildContext) -> list[str]:
    import openvino as ov

    with converting("openvino", "OpenVINO"):
        model = ov.convert_model(os.fspath(ctx.onnx_path))
        # fp32 weights: the IR computes what the ONNX file does (OpenVINO picks bf16 at run time
        # on CPUs that have it unless INFERENCE_PRECISION_HINT is f32).
        ov.save_model(model, os.fspath(ctx.folder / "model.xml"), compress_to_fp16=False)
    write_readme(
        ctx,
        "OpenVINO IR",
        [
            "import openvino as ov",
            'compiled = ov.Core().compile_model("model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})',
            "outputs = compiled(inputs)",
        ],
    )
    return ["model.xml", "model.bin", "README.md"]


TARGET = Target("openvino", "OpenVINO IR (.xml + .bin)", "OpenVINO", "openvino", "openvino", build_openvino)
