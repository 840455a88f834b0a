"""``ferry package``: one model, packaged for a deployment target, with a manifest an app can read.

Each target (one module under :mod:`ferry.package.targets`) writes the runtime's artifact into a folder
and a short README for the app developer; :func:`package` exports the model, adds
``manifest.json`` (inputs and outputs with shapes, dtypes and dynamic axes, pre/post-processing,
the source model's hash, ferry's version, every file with its size and hash) and writes the
folder atomically (a temporary folder renamed into place), so a failed run never leaves half a
package.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.cache import sha256_file
from ferry.errors import MissingDependencyError, UserError
from ferry.package.targets import TARGETS, BuildContext, Target
from ferry.specs import InputSpec

if TYPE_CHECKING:
    from ferry.models import LoadedModel


@dataclass
class PackageResult:
    """A written package; truthy when it was written."""

    target: str
    folder: Path
    files: dict[str, int]
    manifest: dict[str, Any]
    seconds: float

    def __bool__(self) -> bool:
        return bool(self.files)

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "folder": str(self.folder),
            "files": self.files,
            "size_bytes": self.size_bytes,
            "seconds": self.seconds,
            "manifest": self.manifest,
        }


# --- the stage -----------------------------------------------------------------------------------


def package(
    model: str | os.PathLike[str] | LoadedModel,
    folder: str | os.PathLike[str],
    target: str,
    *,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> PackageResult:
    """Package a model for a target into ``folder`` (created; replaced only with ``overwrite``).

    Args:
        model: a model source (``zoo:NAME``, ``file.py:Attr``...) or, for targets that start
            from ONNX, an ``.onnx`` file exported by ferry.
        folder: the package folder to write.
        target: a name from :data:`TARGETS` (``ferry package --help`` lists them).
        inputs: input specs (named dims are dynamic); default: the model's declared ones.

    Raises:
        UserError: unknown target, a model the target cannot take (with the reason), an existing
            folder without ``overwrite``.
        MissingDependencyError: the target's converter is not installed.
    """
    from ferry import onnx_file, subject

    start = time.perf_counter()
    spec = TARGETS.get(target)
    if not spec.available():
        raise MissingDependencyError(f"the {target} target needs {spec.runtime}: pip install 'ferry[{spec.extra}]'")
    out = Path(folder)
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise UserError(f"{out} exists and is not empty; give another folder or --overwrite")
    is_file = isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx")
    if is_file and spec.needs_module:
        raise UserError(f"the {target} target starts from the PyTorch model; give zoo:NAME or file.py:Attr")
    with tempfile.TemporaryDirectory(prefix="ferry-package-") as tmp:
        subj = subject.resolve(model, args=args, weights=weights, inputs=inputs, work_dir=tmp)
        if not subj.specs:
            raise UserError("no input shapes known; give --input specs")
        loaded, onnx_path, source, specs = subj.loaded, subj.onnx_path, subj.source, subj.specs
        outputs = subj.output_names
        task = onnx_file.stored_task(subj.proto)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            ctx = BuildContext(onnx_path, loaded, specs, outputs, task, staging)
            written = spec.build(ctx)
            files = {name: (staging / name).stat().st_size for name in written}
            manifest = _manifest(spec, ctx, source, onnx_path, written)
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            files["manifest.json"] = (staging / "manifest.json").stat().st_size
            if out.is_dir():
                shutil.rmtree(out)
            elif out.exists():
                out.unlink()
            os.replace(staging, out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return PackageResult(target, out, files, manifest, time.perf_counter() - start)


def _manifest(spec: Target, ctx: BuildContext, source: str, onnx_path: Path, written: Sequence[str]) -> dict[str, Any]:
    from ferry._version import __version__
    from ferry.registry import installed_version

    return {
        "format": "ferry-package/1",
        "target": spec.name,
        "runtime": spec.runtime,
        "runtime_version": ctx.runtime_version or installed_version(spec.module, spec.module) or "",
        "ferry_version": __version__,
        "source": source,
        "source_onnx_sha256": sha256_file(onnx_path),
        "inputs": [
            {
                "name": s.name,
                "dtype": s.dtype,
                "shape": list(s.shape),
                "dynamic_axes": {str(a): n for a, n in s.dynamic_axes.items()},
            }
            for s in ctx.specs
        ],
        "outputs": list(ctx.output_names),
        "task": ctx.task,
        "files": {
            name: {"bytes": (ctx.folder / name).stat().st_size, "sha256": sha256_file(ctx.folder / name)}
            for name in written
        },
        **ctx.extra,
    }
