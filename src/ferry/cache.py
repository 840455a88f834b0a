"""ferry's on-disk cache: exported zoo models and runtime measurements, reused between runs.

Everything in it can be deleted at any time; it is rebuilt on demand.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.errors import FerryWarning, WriteError

if TYPE_CHECKING:
    from ferry.models import LoadedModel
    from ferry.zoo import ZooModel


def cache_dir() -> Path:
    """``$FERRY_CACHE_DIR``, else ``$XDG_CACHE_HOME/ferry``, else ``~/.cache/ferry``."""
    if os.environ.get("FERRY_CACHE_DIR"):
        return Path(os.environ["FERRY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ferry"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _state_digest(loaded: LoadedModel) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(loaded.module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def cached_zoo_export(entry: ZooModel) -> Path:
    """A zoo model with its shipped weights exported to ONNX, from the cache without importing
    torch when the same weights file was exported by the same ferry and torch release before
    (the fast path of ``ferry upscale``); else built, exported and cached.

    Raises:
        UserError: the model has no shipped weights (use :func:`cached_export`).
    """
    from importlib import metadata

    from ferry._version import __version__
    from ferry.errors import UserError

    weights = entry.weights_file()
    if weights is None:
        raise UserError(f"zoo:{entry.name} has no trained weights to export")
    key = json.dumps(
        {
            "zoo": entry.name,
            "weights": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "ferry": __version__,
            "torch": metadata.version("torch"),
        },
        sort_keys=True,
    )
    path = cache_dir() / "models" / f"zoo-{entry.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"
    if usable_cached_model(path):
        return path
    from ferry.models import load_model

    return _export_into(load_model(f"zoo:{entry.name}"), path)


def usable_cached_model(path: Path) -> bool:
    """Whether a model file in the cache can be used: it is there, reads as an ONNX model and
    passes the checker. A damaged one (truncated, overwritten) is deleted with a warning, so that
    the caller builds it again instead of failing on a file the user never made."""
    import onnx

    from ferry import onnx_file
    from ferry.errors import UserError

    if not path.is_file():
        return False
    try:
        onnx.checker.check_model(onnx_file.load(path, load_external_data=False))
    except (UserError, onnx.checker.ValidationError, ValueError):  # ValueError: from onnx's C++ checker
        warnings.warn(f"rebuilding {path} in ferry's cache: the file there is damaged", FerryWarning, 2)
        with contextlib.suppress(OSError):  # an entry that cannot be removed is written over
            path.unlink()
        return False
    return True


def cached_export(loaded: LoadedModel) -> Path:
    """The model exported to ONNX with its declared inputs, from the cache when the same model
    (source, weights) was exported by the same ferry and torch before."""
    from ferry._version import __version__

    key = json.dumps(
        {"source": loaded.source, "weights": _state_digest(loaded), "ferry": __version__, "torch": _torch_version()},
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    name = loaded.source.replace("zoo:", "zoo-").replace("/", "_").replace(":", "_")[-40:]
    path = cache_dir() / "models" / f"{name}-{digest}.onnx"
    if usable_cached_model(path):
        return path
    return _export_into(loaded, path)


def _export_into(loaded: LoadedModel, path: Path) -> Path:
    """Export ``loaded`` to the cache entry ``path`` (atomically), or, when the cache folder cannot
    be written, into this process's scratch folder with a warning; the file written."""
    from ferry._io import atomic_path
    from ferry.export import export

    try:
        with atomic_path(path) as tmp:
            export(loaded, tmp)
        return path
    except WriteError as exc:
        warnings.warn(
            f"not caching the exported model: {exc} (set FERRY_CACHE_DIR to a writable folder)", FerryWarning, 3
        )
    path = _scratch_dir() / path.name
    export(loaded, path)
    return path


_scratch: list[Path] = []


def _scratch_dir() -> Path:
    """A temporary folder for this process, removed at exit: where cache entries go when the
    cache folder cannot be written."""
    if not _scratch:
        folder = Path(tempfile.mkdtemp(prefix="ferry-cache-"))
        atexit.register(shutil.rmtree, folder, True)
        _scratch.append(folder)
    return _scratch[0]
