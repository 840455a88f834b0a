"""Package target: ONNX Runtime Mobile: the ORT format and the operator config of a minimal build."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ferry.convert.ort import ort_from_onnx, required_operators
from ferry.package.targets.base import BuildContext, Target, write_readme


def build_ort_mobile(ctx: BuildContext) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ferry-ort-") as tmp:
        ort_file, config = ort_from_onnx(ctx.onnx_path, Path(tmp))
        shutil.copyfile(ort_file, ctx.folder / "model.ort")
        shutil.copyfile(config, ctx.folder / "required_operators_and_types.config")
    ctx.extra["required_operators"] = required_operators(ctx.folder / "required_operators_and_types.config")
    ctx.notes.append(
        "Build a minimal ONNX Runtime with exactly these operators:"
        " `python tools/ci_build/build.py --minimal_build --include_ops_by_config"
        " required_operators_and_types.config ...` (onnxruntime repository)."
    )
    write_readme(
        ctx,
        "ONNX Runtime Mobile (ORT format)",
        [
            "// Kotlin (com.microsoft.onnxruntime:onnxruntime-android)",
            "val env = OrtEnvironment.getEnvironment()",
            'val session = env.createSession(assets.open("model.ort").readBytes())',
            "// Swift (onnxruntime-objc): try ORTSession(env: env, modelPath: path, sessionOptions: nil)",
        ],
    )
    return ["model.ort", "required_operators_and_types.config", "README.md"]


TARGET = Target(
    "ort-mobile",
    ".ort file + the operator config for a minimal ONNX Runtime build",
    "ONNX Runtime Mobile",
    "core",
    "onnxruntime",
    build_ort_mobile,
)
