"""``ferry check``: validate an ONNX file (onnx.checker, full check, and shape inference)."""

from __future__ import annotations

from rich.markup import escape

from ferry.cli._options import JsonOpt, OnnxFileArg
from ferry.cli._render import console, emit_json, err_console, quiet_human, refuse_input_outputs
from ferry.errors import UserError


def check_cmd(file: OnnxFileArg, json_out: JsonOpt = None) -> None:
    """Validate an ONNX file with onnx.checker (full check) and shape inference. Exit 1 if invalid."""
    from ferry.check import check

    refuse_input_outputs(json_out)
    result = check(file)
    if result and not quiet_human(json_out):
        console.print(f"[green]valid[/green] {file}: {escape(result.message)}")
        if result:
            opsets = ", ".join(f"{k} {v}" for k, v in result.opsets.items())
            console.print(
                f"  IR version {result.ir_version}, opsets {opsets}, {result.nodes} nodes,"
                f" {result.inferred_tensors} intermediate shapes inferred; producer {result.producer}"
            )
    for warning in result.warnings:
        err_console.print(f"[yellow]warning[/yellow] {escape(warning)}")
    emit_json(json_out, result.to_dict())
    if not result:
        raise UserError(f"{file} is not a valid ONNX model: {result.message}")
