"""``ferry package``: one model, packaged for a deployment target, with a manifest an app can read.

Each target (one module under :mod:`ferry.package.targets`) writes the runtime's artifact into a folder
and a short README for the app developer; :func:`package` exports the model, adds
``manifest.json`` (inputs and outputs with shapes, dtypes and dynamic axes, pre/post-processing,
the source model's hash, ferry's version, every file with its size and hash) and writes the
folder atomically (a temporary folder renamed into place), so a failed run never leaves half a
package. The folder never replaces one that holds the model or its weights, and gets the
permissions of a plain ``mkdir`` (the umask decides).
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

from ferry._io import reading, refuse_removing_inputs, remove_stale_temps, temp_name
from ferry.cache import sha256_file
from ferry.errors import MissingDependencyError, UserError, WriteError, describe_os_error
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
            folder without ``overwrite``, a folder that holds the model or its weights.
        WriteError: the operating system refused to write the folder (permissions, a full disk).
        MissingDependencyError: the target's converter is not installed.
    """
    from ferry import onnx_file, subject

    start = time.perf_counter()
    spec = TARGETS.get(target)
    if not spec.available():
        raise MissingDependencyError(f"the {target} target needs {spec.runtime}: pip install 'ferry[{spec.extra}]'")
    out = Path(folder)
    source_path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
    with reading(source_path, weights):
        refuse_removing_inputs(out)  # before "--overwrite" is suggested: it would delete the input
        if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
            raise UserError(f"{out} exists and is not empty; give another folder or --overwrite")
        is_file = source_path is not None and source_path.lower().endswith(".onnx")
        if is_file and spec.needs_module:
            raise UserError(f"the {target} target starts from the PyTorch model; give zoo:NAME or file.py:Attr")
        with tempfile.TemporaryDirectory(prefix="ferry-package-") as tmp:
            subj = subject.resolve(model, args=args, weights=weights, inputs=inputs, work_dir=tmp)
            if not subj.specs:
                raise UserError("no input shapes known; give --input specs")
            task = onnx_file.stored_task(subj.proto)
            staging = _staging_folder(out)
            try:
                ctx = BuildContext(subj.onnx_path, subj.loaded, subj.specs, subj.output_names, task, staging)
                written = spec.build(ctx)
                files = {name: (staging / name).stat().st_size for name in written}
                manifest = _manifest(spec, ctx, subj.source, subj.onnx_path, written)
                (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
                files["manifest.json"] = (staging / "manifest.json").stat().st_size
                _put_in_place(staging, out)
            except OSError as exc:
                if exc.errno is None:
                    raise
                raise WriteError(describe_os_error(exc, out, "write the package")) from exc
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
    return PackageResult(target, out, files, manifest, time.perf_counter() - start)


def _staging_folder(out: Path) -> Path:
    """An empty hidden folder beside ``out`` to build the package in, with the permissions a plain
    ``mkdir`` gives (``tempfile.mkdtemp`` makes 0700 folders: a web server running as another user
    could then not serve the package). Leftovers of killed runs there are removed first."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out.parent)
        staging = out.parent / temp_name()
        staging.mkdir(0o777)  # less the umask
    except OSError as exc:
        raise WriteError(describe_os_error(exc, out, "write the package")) from exc
    return staging


def _put_in_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is moved aside first and deleted only once
    the new package is in place (a failure leaves the old one)."""
    aside = None
    if out.exists() or out.is_symlink():
        aside = out.parent / temp_name()
        os.replace(out, aside)
    try:
        os.replace(staging, out)
    except OSError:
        if aside is not None:
            os.replace(aside, out)
        raise
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink()


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
