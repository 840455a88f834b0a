"""Package target: the ONNX file itself, for ONNX Runtime on desktops, servers and full mobile builds."""

from __future__ import annotations

import shutil
import warnings

from ferry.errors import FerryWarning, UserError
from ferry.package.targets.base import BuildContext, Target, external_data_files, write_readme

#: the names the package itself uses: external data may not take them
_RESERVED = ("model.onnx", "README.md", "manifest.json")


def build_onnx(ctx: BuildContext) -> list[str]:
    """The model, checked (a package that does not load is refused), with its external data."""
    from ferry.check import check

    result = check(ctx.onnx_path)
    if not result:
        raise UserError(f"the onnx target: {ctx.onnx_path} is not a valid ONNX model: {result.message}")
    for warning in result.warnings:
        ctx.notes.append(warning)
        warnings.warn(f"the onnx target: {warning}", FerryWarning, 2)
    data = external_data_files(ctx.onnx_path)
    clash = [name for name in data if name in _RESERVED]
    if clash:
        raise UserError(f"{ctx.onnx_path}: its external data is named {clash[0]!r}; re-save it under another name")
    shutil.copyfile(ctx.onnx_path, ctx.folder / "model.onnx")
    for name in data:
        (ctx.folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx.onnx_path.parent / name, ctx.folder / name)
    if data:
        ctx.notes.append(f"The weights are in {', '.join(data)}: keep them beside model.onnx.")
    write_readme(
        ctx,
        "ONNX Runtime (desktop, server, Android/iOS full builds)",
        [
            "import onnxruntime as ort",
            'session = ort.InferenceSession("model.onnx")',
            "outputs = session.run(None, {" + ", ".join(f'"{s.name}": {s.name}_array' for s in ctx.specs) + "})",
        ],
    )
    return ["model.onnx", *data, "README.md"]


TARGET = Target("onnx", "the ONNX file itself", "ONNX Runtime", "core", "onnxruntime", build_onnx)
