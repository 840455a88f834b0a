"""Package target: ONNX Runtime Mobile: the ORT format and the operator config of a minimal build."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ferry.errors import UserError
from ferry.targets.base import BuildContext, Target, quietly, write_readme


def ort_format(onnx_path: Path, folder: Path) -> tuple[Path, Path]:
    """Convert an ONNX file to the ORT format with ONNX Runtime's own tool (optimizations fixed
    for ARM, operator types reduced); returns the ``.ort`` file and the operator config."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    work = folder / "ort-work"
    work.mkdir(parents=True, exist_ok=True)
    src = work / "model.onnx"
    shutil.copyfile(onnx_path, src)
    out = work / "out"
    quietly(
        lambda: convert_onnx_models_to_ort(
            src,
            out,
            optimization_styles=[OptimizationStyle.Fixed],
            target_platform="arm",  # phones; the optimized graph stays portable to x86
            enable_type_reduction=True,
        )
    )
    ort_files = list(out.glob("*.ort"))
    configs = list(out.glob("*.config"))
    if not ort_files or not configs:
        raise UserError("ONNX Runtime could not convert the model to the ORT format")
    return ort_files[0], configs[0]


def build_ort_mobile(ctx: BuildContext) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ferry-ort-") as tmp:
        ort_file, config = ort_format(ctx.onnx_path, Path(tmp))
        shutil.copyfile(ort_file, ctx.folder / "model.ort")
        shutil.copyfile(config, ctx.folder / "required_operators_and_types.config")
    ops = [
        line.split(";")[2].split("{")[0]
        for line in (ctx.folder / "required_operators_and_types.config").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    ctx.extra["required_operators"] = ops
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
