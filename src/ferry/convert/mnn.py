"""ONNX -> MNN (``.mnn``), with MNN's converter in a child process.

The converter is reached through MNN's ``_tools`` extension only: importing ``MNN.tools`` (what
``mnnconvert`` does) sends telemetry and pip-installs a logging SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferry.errors import UnsupportedModelError


def mnn_from_onnx(onnx_path: str | os.PathLike[str], mnn_path: str | os.PathLike[str]) -> None:
    """Convert an ONNX file to ``.mnn`` with MNN's converter, in a child process.

    Raises:
        UserError: when the converter fails, with the error lines it printed.
    """
    code = "import sys, _tools; _tools.mnnconvert(sys.argv)"
    argv = ["-f", "ONNX", "--modelFile", os.fspath(onnx_path), "--MNNModel", os.fspath(mnn_path), "--bizCode", "ferry"]
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not Path(mnn_path).is_file():
        errors = [
            line.strip()
            for line in (proc.stdout + proc.stderr).splitlines()
            if "error" in line.lower() or "failed" in line.lower() or "not support" in line.lower()
        ]
        if not errors:
            tail = [line.strip() for line in proc.stdout.splitlines() if line.strip()][-1:]
            how = f"crashed (signal {-proc.returncode})" if proc.returncode < 0 else f"exit code {proc.returncode}"
            errors = [f"the converter {how}" + (f" after: {tail[0]}" if tail else "")]
        raise UnsupportedModelError(f"MNN cannot convert the model: {'; '.join(errors)[:400]}")
