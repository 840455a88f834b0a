"""What a stage works on: the PyTorch model when it is known, an ONNX file of it, and the input
specs aligned to the file's graph names. Resolved once, here, for verify, bench and package.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from torch import nn

from ferry import onnx_file, tasks
from ferry.errors import InternalError, UserError
from ferry.models import LoadedModel, load_model, named_inputs
from ferry.specs import InputSpec, TensorInfo

ModelSource = str | os.PathLike[str] | nn.Module | LoadedModel


@dataclass
class Subject:
    """A model under test.

    Attributes:
        loaded: the PyTorch model, or ``None`` for an ONNX file given alone.
        onnx_path: the ONNX file (given, or exported by :func:`resolve`).
        proto: the file's graph, without external data.
        specs: input specs named as the graph's inputs (empty when none are known).
        graph_inputs: the graph's inputs as :class:`TensorInfo` (initializers excluded).
        output_names: the graph's output names.
        source: the model source, or the file's path for a file alone.
        export_seconds: how long :func:`resolve`'s export took, ``None`` when the file was given.
    """

    loaded: LoadedModel | None
    onnx_path: Path
    proto: onnx.ModelProto
    specs: tuple[InputSpec, ...]
    graph_inputs: tuple[TensorInfo, ...]
    output_names: tuple[str, ...]
    source: str
    export_seconds: float | None = None


def is_onnx_file(source: object) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".onnx")


def load(
    source: ModelSource, *, args: Mapping[str, Any] | None = None, weights: str | os.PathLike[str] | None = None
) -> LoadedModel:
    """A model source as a :class:`LoadedModel` (a ``LoadedModel`` is returned as it is)."""
    if isinstance(source, LoadedModel):
        return source
    return load_model(source if isinstance(source, nn.Module) else os.fspath(source), args=args, weights=weights)


def resolve(
    source: ModelSource,
    *,
    onnx: str | os.PathLike[str] | None = None,
    model: ModelSource | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    export_inputs: Sequence[InputSpec] | None = None,
) -> Subject:
    """The model, its ONNX file and its input specs, aligned to the graph's names.

    Args:
        source: a model source (``zoo:NAME``, ``file.py:Attr``, a module...) or an ``.onnx`` file.
        onnx: the ONNX file of ``source`` when it is a model (``verify MODEL FILE``).
        model: for an ``.onnx`` ``source``, the PyTorch model it came from (optional).
        args: constructor keyword arguments.
        weights: a state dict to load.
        inputs: input specs chosen by the user; else the model's declared ones, else those stored
            in the file at export.
        work_dir: where to export a model given without ``onnx``.
        export_inputs: the specs to export with, when they differ from ``inputs``.

    Raises:
        UserError: a missing file, or specs that do not fit the graph's inputs.
    """
    export_seconds: float | None = None
    if is_onnx_file(source):
        path = Path(os.fspath(source))  # type: ignore[arg-type]
        if not path.is_file():
            raise UserError(f"ONNX file not found: {path}")
        loaded = load(model, args=args, weights=weights) if model is not None else None
    else:
        loaded = load(source, args=args, weights=weights)
        if onnx is not None:
            path = Path(onnx)
        else:
            from ferry.export import export

            if work_dir is None:
                raise InternalError("resolve() needs work_dir to export a model given without its ONNX file")
            path = Path(work_dir) / "model.onnx"
            start = time.perf_counter()
            export(loaded, path, inputs=export_inputs or inputs)
            export_seconds = time.perf_counter() - start
    proto = onnx_file.load(path, load_external_data=False)
    if loaded is not None:
        loaded = _with_file_io(loaded, proto)
    graph_inputs, graph_outputs = onnx_file.graph_io(proto)
    declared = tuple(inputs or ()) or (loaded.inputs if loaded is not None else ()) or onnx_file.stored_specs(proto)
    specs = named_inputs(loaded, declared) if loaded is not None and declared else tuple(declared)
    return Subject(
        loaded=loaded,
        onnx_path=path,
        proto=proto,
        specs=aligned(specs, [i.name for i in graph_inputs], path),
        graph_inputs=graph_inputs,
        output_names=tuple(o.name for o in graph_outputs),
        source=loaded.source if loaded is not None else str(path),
        export_seconds=export_seconds,
    )


def _with_file_io(loaded: LoadedModel, proto: onnx.ModelProto) -> LoadedModel:
    """The model as the file holds it: a decoder LM's KV cache as named tensors (or dropped) as
    exported, and wrapped in its task's in-graph I/O when the file is."""
    from ferry.export import as_exported

    loaded = as_exported(loaded, proto)
    info, task = tasks.of(onnx_file.stored_task(proto))
    if task is not None and task.wrap_io is not None and task.io_name and info.io == task.io_name:
        return task.wrap_io(loaded)
    return loaded


def aligned(specs: Sequence[InputSpec], names: Sequence[str], path: Path) -> tuple[InputSpec, ...]:
    """Specs renamed to the graph's input names, in order.

    Raises:
        UserError: when their number differs from the graph's.
    """
    if not specs or [s.name for s in specs] == list(names):
        return tuple(specs)
    if len(specs) != len(names):
        raise UserError(f"{path} has inputs {list(names)} but the model takes {[s.name for s in specs]}")
    return tuple(s.with_name(n) for s, n in zip(specs, names, strict=True))
