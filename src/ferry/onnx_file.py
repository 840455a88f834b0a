"""ONNX files: reading them, their graph's inputs and outputs, and the metadata ferry stores in them.

The only place that knows how a graph's real inputs are told from its initializers and how the
``ferry.*`` metadata props are encoded; every stage and backend reads files through it.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import onnx

from ferry._inputs import input_file
from ferry.errors import UserError, first_line
from ferry.specs import InputSpec, TensorInfo, parse_input_spec

#: metadata keys whose values are JSON (the others are plain strings)
_JSON_KEYS = ("inputs", "outputs", "task", "tolerance", "optimized")
#: largest upscale factor a task may declare
_MAX_SCALE = 64


def load(
    path: str | os.PathLike[str], *, load_external_data: bool = True, check_metadata: bool = True
) -> onnx.ModelProto:
    """Read an ONNX file with a clear error for a missing, empty or corrupt file.

    Args:
        check_metadata: refuse a file whose ``ferry.*`` metadata is malformed (every stage reads
            it); ``inspect`` reads such a file anyway and reports the problem.

    Raises:
        UserError: the file is missing, not a regular file, empty, not an ONNX model, or holds
            malformed ferry metadata.
    """
    path = input_file(path, "ONNX file", hint="give an .onnx file exported by ferry or torch.onnx")
    try:
        proto = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends are not part of onnx's API
        raise UserError(f"{path} is not a readable ONNX model ({first_line(exc)}); give an intact .onnx file") from exc
    if not proto.HasField("graph"):
        # Protobuf parses many byte strings as an empty message: a file without a graph is no model.
        raise UserError(f"{path} is not an ONNX model (it holds no graph); give an intact .onnx file")
    if check_metadata:
        problem = metadata_problem(proto)
        if problem is not None:
            raise UserError(f"{path}: {problem}")
    return proto


def _info(vi: onnx.ValueInfoProto) -> TensorInfo:
    tt = vi.type.tensor_type
    dims: list[int | str | None] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
    ]
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
    except KeyError:  # not a tensor (a sequence, a map), or an element type onnx does not know
        raise UserError(
            f"the model's input or output {vi.name!r} is not a tensor of a known element type"
            f" (elem_type {tt.elem_type}); ferry takes models whose inputs and outputs are tensors"
        ) from None
    return TensorInfo(vi.name, dtype, tuple(dims))


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


def _decode(proto: onnx.ModelProto) -> dict[str, Any]:
    """The ``ferry.*`` props, JSON decoded where the key is structured (raw text when it is not JSON)."""
    meta: dict[str, Any] = {}
    for prop in proto.metadata_props:
        key, value = _text(prop.key), prop.value
        if not key.startswith("ferry."):
            continue
        key = key[len("ferry.") :]
        if not isinstance(value, str):  # bytes: text that is not UTF-8
            meta[key] = _Malformed(_text(value))
            continue
        try:
            meta[key] = json.loads(value) if key in _JSON_KEYS else value
        except (ValueError, RecursionError):  # ValueError: also an integer over Python's 4300 digits
            meta[key] = _Malformed(value)
    return meta


def _text(value: str | bytes) -> str:
    """A protobuf string field as text: protobuf hands back bytes for one that is not UTF-8."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


class _Malformed(str):
    """A structured metadata value that is not JSON."""


def _input_entries_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        return "is not a list of {name, spec} objects"
    for entry in value:
        if not isinstance(entry.get("name"), str) or not isinstance(entry.get("spec"), str):
            return "has an entry without a string name and spec"
        try:
            parse_input_spec(entry["spec"])
        except UserError as exc:
            return f"holds a bad spec ({exc})"
    return None


def _task_problem(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return "is not an object"
    for key in ("kind", "preprocess", "io", "colour", "input_layout", "output_layout"):
        if key in value and not isinstance(value[key], str):
            return f"has a {key} that is not a string"
    scale = value.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= _MAX_SCALE):
        return f"has scale {scale!r}, not an integer from 1 to {_MAX_SCALE}"
    return None


def _value_problem(key: str, value: Any) -> str | None:
    """What is wrong with one decoded metadata value, or ``None``."""
    if isinstance(value, _Malformed):
        return "is not valid JSON" if key in _JSON_KEYS else "is not UTF-8 text"
    if key == "inputs":
        return _input_entries_problem(value)
    if key == "outputs" and not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
        return "is not a list of names"
    if key == "task":
        return _task_problem(value)
    if key == "tolerance" and not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf for v in value)
    ):
        return "is not a pair of non-negative numbers [rtol, atol]"
    if key == "optimized" and not isinstance(value, Mapping):
        return "is not an object"
    return None


def metadata_problem(proto: onnx.ModelProto) -> str | None:
    """A one-line description of the first malformed ``ferry.*`` metadata prop, or ``None``."""
    for key, value in _decode(proto).items():
        problem = _value_problem(key, value)
        if problem is not None:
            return (
                f"its ferry metadata is malformed: ferry.{key} {problem}; re-export the model with ferry,"
                " or remove the ferry.* metadata props to use it as a plain ONNX file"
            )
    return None


def read_metadata(proto: onnx.ModelProto) -> dict[str, Any]:
    """The ``ferry.*`` metadata an export stored in a model, decoded and checked (``{}`` for other files).

    Raises:
        UserError: a prop is malformed (not JSON where JSON is stored, or not of the shape ferry
            writes).
    """
    problem = metadata_problem(proto)
    if problem is not None:
        raise UserError(f"the ONNX model: {problem}")
    return _decode(proto)


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
