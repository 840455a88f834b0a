"""Package target: ONNX Runtime Mobile: the ORT format and the operator config of a minimal build."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ferry.convert.ort import ort_from_onnx, required_operators
from ferry.errors import UnsupportedModelError
from ferry.package.targets.base import BuildContext, Target, converting, external_data_files, write_readme


def build_ort_mobile(ctx: BuildContext) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ferry-ort-") as tmp:
        source = _one_file(ctx.onnx_path, Path(tmp))
        with converting("ort-mobile", "ONNX Runtime's ORT-format converter"):
            ort_file, config = ort_from_onnx(source, Path(tmp))
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


def _one_file(onnx_path: Path, tmp: Path) -> Path:
    """The model with its external data (the converter copies the ONNX file alone) read back into
    one file in ``tmp``; the file itself when it has none.

    Raises:
        UnsupportedModelError: weights over the 2 GB an ORT-format file can hold.
    """
    import onnx

    from ferry import onnx_file

    if not external_data_files(onnx_path):
        return onnx_path
    proto = onnx_file.load(onnx_path)
    if proto.ByteSize() >= 2**31:
        raise UnsupportedModelError("the ort-mobile target: an ORT-format file holds at most 2 GB of weights")
    single = tmp / "inline.onnx"
    onnx.save(proto, str(single))
    return single


TARGET = Target(
    "ort-mobile",
    ".ort file + the operator config for a minimal ONNX Runtime build",
    "ONNX Runtime Mobile",
    "core",
    "onnxruntime",
    build_ort_mobile,
)
