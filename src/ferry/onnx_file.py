"""ONNX files: reading them, their graph's inputs and outputs, and the metadata ferry stores in them.

The only place that knows how a graph's real inputs are told from its initializers and how the
``ferry.*`` metadata props are encoded; every stage and backend reads files through it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from ferry.errors import UserError
from ferry.specs import InputSpec, TensorInfo, parse_input_spec

#: metadata keys whose values are JSON (the others are plain strings)
_JSON_KEYS = ("inputs", "outputs", "task", "tolerance", "optimized")


def load(path: str | os.PathLike[str], *, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file with a clear error for a missing or corrupt file.

    Raises:
        UserError: the file is missing or is not a readable ONNX model.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends are not part of onnx's API
        raise UserError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); re-export it") from exc


def _info(vi: onnx.ValueInfoProto) -> TensorInfo:
    tt = vi.type.tensor_type
    dims: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
    ]
    return TensorInfo(vi.name, onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name, tuple(dims))


def graph_io(proto: onnx.ModelProto) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """Declared inputs (initializers excluded) and outputs of a model as :class:`TensorInfo`."""
    init = {i.name for i in proto.graph.initializer}
    ins = tuple(_info(vi) for vi in proto.graph.input if vi.name not in init)
    return ins, tuple(_info(vi) for vi in proto.graph.output)


def input_names(proto: onnx.ModelProto | str | os.PathLike[str]) -> list[str]:
    """The graph's input names (initializers excluded), from a model or a file, without a runtime."""
    if not isinstance(proto, onnx.ModelProto):
        proto = load(proto, load_external_data=False)
    return [i.name for i in graph_io(proto)[0]]


def output_names(proto: onnx.ModelProto) -> list[str]:
    """The graph's output names, in order."""
    return [o.name for o in proto.graph.output]


def op_histogram(proto: onnx.ModelProto) -> dict[str, int]:
    """Operator type -> node count in the main graph, sorted by name."""
    return dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))


def read_metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    """The ``ferry.*`` metadata an export stored in a model, decoded (``{}`` for other files)."""
    meta: dict[str, Any] = {}
    for prop in proto.metadata_props:
        if not prop.key.startswith("ferry."):
            continue
        key = prop.key[len("ferry.") :]
        try:
            meta[key] = json.loads(prop.value) if key in _JSON_KEYS else prop.value
        except json.JSONDecodeError:
            meta[key] = prop.value
    return meta


def write_metadata(proto: onnx.ModelProto, meta: Mapping[str, Any]) -> None:
    """Store ``ferry.KEY`` props (JSON for structured keys), replacing those of the same keys."""
    encoded = {f"ferry.{k}": json.dumps(v) if k in _JSON_KEYS else str(v) for k, v in meta.items()}
    keep = [p for p in proto.metadata_props if p.key not in encoded]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in encoded.items():
        proto.metadata_props.add(key=key, value=value)


def stored_task(proto: onnx.ModelProto) -> dict[str, Any]:
    """The task metadata stored at export (``{}`` when there is none)."""
    task = read_metadata(proto).get("task")
    return dict(task) if isinstance(task, Mapping) else {}


def stored_specs(proto: onnx.ModelProto) -> tuple[InputSpec, ...]:
    """Input specs ferry stored at export time, or ``()`` for a file ferry did not write."""
    entries = read_metadata(proto).get("inputs") or []
    return tuple(parse_input_spec(e["spec"]).with_name(e["name"]) for e in entries)


def graph_specs(proto: onnx.ModelProto) -> tuple[InputSpec, ...]:
    """Specs from the graph's declared input shapes; only possible when they are all static."""
    specs = []
    for info in graph_io(proto)[0]:
        if not all(isinstance(d, int) for d in info.shape):
            return ()
        specs.append(parse_input_spec(",".join(map(str, info.shape)) + f":{info.dtype}").with_name(info.name))
    return tuple(specs)
