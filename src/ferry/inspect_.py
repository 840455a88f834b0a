"""Describe an ONNX model: I/O with dynamic dims, opsets, parameters, operators and FLOPs."""

from __future__ import annotations

import copy
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
from onnx import helper, shape_inference

from ferry import onnx_file
from ferry.errors import UserError
from ferry.onnx_file import read_metadata, stored_specs
from ferry.specs import InputSpec

# Ops that move or reshape data without arithmetic; any other op counts one FLOP per output element.
_NO_COMPUTE = {
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "Shape",
    "Constant",
    "Transpose",
    "Concat",
    "Slice",
    "Gather",
    "Split",
    "Cast",
    "Expand",
    "DepthToSpace",
    "SpaceToDepth",
    "ConstantOfShape",
    "Range",
    "Size",
}


@dataclass(frozen=True)
class IOInfo:
    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def describe(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass
class FlopEstimate:
    """FLOPs (multiply and add counted separately) for one set of input shapes."""

    input_shapes: dict[str, list[int]]
    total: int
    by_op: dict[str, int]
    unknown_nodes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelInfo:
    """What :func:`inspect_model` finds in a file."""

    path: Path
    producer: str
    ir_version: int
    opsets: dict[str, int]
    inputs: list[IOInfo]
    outputs: list[IOInfo]
    parameters: int
    parameter_bytes: int
    file_bytes: int
    ops: dict[str, int]
    metadata: dict[str, Any]
    flops: FlopEstimate | None = None
    graph: str = ""
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        if not self.graph:
            d.pop("graph")
        return d


def _dims(vi: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    out: list[int | str] = []
    for d in vi.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return tuple(out)


def _dtype(vi: onnx.ValueInfoProto) -> str:
    elem = vi.type.tensor_type.elem_type
    try:
        return str(helper.tensor_dtype_to_np_dtype(elem).name)
    except KeyError:
        return helper.tensor_dtype_to_string(elem)


def _io(vi: onnx.ValueInfoProto) -> IOInfo:
    return IOInfo(vi.name, _dtype(vi), _dims(vi))


def _initializer_bytes(t: onnx.TensorProto) -> tuple[int, int]:
    numel = math.prod(t.dims)
    try:
        itemsize = helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except KeyError:  # an undefined or unknown element type: the checker reports it, inspect shows the rest
        itemsize = 0
    return numel, numel * itemsize


def _metadata(proto: onnx.ModelProto) -> tuple[dict[str, Any], str]:
    """The ferry metadata, and a note when it is malformed (then its props as stored, undecoded)."""
    problem = onnx_file.metadata_problem(proto)
    if problem is None:
        return read_metadata(proto), ""
    raw = {p.key[len("ferry.") :]: p.value for p in proto.metadata_props if p.key.startswith("ferry.")}
    return raw, f"ferry metadata ignored: {problem.removeprefix('its ferry metadata is malformed: ')}"


def _concrete_shapes(proto: onnx.ModelProto, sizes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    """Infer every tensor's shape with the inputs fixed to ``sizes``."""
    model = copy.deepcopy(proto)
    for inp in model.graph.input:
        if inp.name not in sizes:
            continue
        shape = inp.type.tensor_type.shape
        del shape.dim[:]
        for v in sizes[inp.name]:
            shape.dim.add().dim_value = int(v)
    inferred = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = _dims(vi)
        if vi.type.tensor_type.HasField("shape") and all(isinstance(d, int) for d in dims):
            shapes[vi.name] = tuple(int(d) for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _node_flops(node: onnx.NodeProto, shapes: Mapping[str, tuple[int, ...]]) -> int | None:
    out = shapes.get(node.output[0]) if node.output else None
    if node.op_type in ("Conv", "ConvTranspose"):
        w = shapes.get(node.input[1])
        x = shapes.get(node.input[0])
        if out is None or w is None or x is None:
            return None
        if node.op_type == "Conv":
            macs = math.prod(out) * math.prod(w[1:])
        else:
            macs = math.prod(x) * math.prod(w[1:])
        return 2 * macs + (math.prod(out) if len(node.input) > 2 and node.input[2] else 0)
    if node.op_type in ("MatMul", "Gemm"):
        a = shapes.get(node.input[0])
        if out is None or a is None:
            return None
        transposed = node.op_type == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
        k = a[-2] if transposed else a[-1]
        return 2 * math.prod(out) * k
    if node.op_type in _NO_COMPUTE:
        return 0
    if out is None:
        return None
    return math.prod(out)


def estimate_flops(proto: onnx.ModelProto, sizes: Mapping[str, Sequence[int]]) -> FlopEstimate:
    """Estimate FLOPs for concrete input shapes (convolutions and matmuls exactly, others per element)."""
    shapes = _concrete_shapes(proto, sizes)
    by_op: Counter[str] = Counter()
    unknown = 0
    for node in proto.graph.node:
        f = _node_flops(node, shapes)
        if f is None:
            unknown += 1
            continue
        by_op[node.op_type] += f
    return FlopEstimate(
        input_shapes={k: list(v) for k, v in sizes.items()},
        total=int(sum(by_op.values())),
        by_op=dict(by_op.most_common()),
        unknown_nodes=unknown,
    )


def inspect_model(
    path: str | os.PathLike[str],
    *,
    inputs: Sequence[InputSpec] | None = None,
    graph: bool = False,
) -> ModelInfo:
    """Describe an ONNX model.

    Args:
        path: the ONNX file.
        inputs: shapes to estimate FLOPs at; default: the export shapes ferry stored, or the
            graph's static shapes. Without either, FLOPs are not estimated.
        graph: also return the readable graph (``onnx.helper.printable_graph``).

    Example:
        >>> info = ferry.inspect_model("sr.onnx")
        >>> info.ops
        {'Conv': 4, 'Relu': 3, 'DepthToSpace': 1}
    """
    path = Path(path)
    proto = onnx_file.load(path, load_external_data=False, check_metadata=False)
    params = 0
    nbytes = 0
    for init in proto.graph.initializer:
        n, b = _initializer_bytes(init)
        params += n
        nbytes += b
    initializer_names = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in initializer_names]
    notes: list[str] = []
    metadata, problem = _metadata(proto)
    if problem:
        notes.append(problem)
    chosen: dict[str, list[int]] = {}
    if inputs:
        if len(inputs) != len(graph_inputs):
            raise UserError(f"{path} has {len(graph_inputs)} input(s), got {len(inputs)} --input specs")
        chosen = {vi.name: list(s.shape) for vi, s in zip(graph_inputs, inputs, strict=True)}
    else:
        specs = () if problem else stored_specs(proto)
        if specs:
            chosen = {s.name: list(s.shape) for s in specs}
        elif all(isinstance(d, int) for vi in graph_inputs for d in _dims(vi)):
            chosen = {vi.name: [int(d) for d in _dims(vi)] for vi in graph_inputs}
        else:
            notes.append("FLOPs not estimated: inputs are dynamic; pass --input shapes")
    flops = None
    if chosen:
        try:
            flops = estimate_flops(proto, chosen)
        except (shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
            notes.append(f"FLOPs not estimated: shape inference failed ({' '.join(str(exc).split())[:200]})")
    ext = [i for i in proto.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    file_bytes = path.stat().st_size
    if ext:
        notes.append(f"{len(ext)} initializer(s) stored as external data")
    return ModelInfo(
        path=path,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        ir_version=proto.ir_version,
        opsets={(o.domain or "ai.onnx"): o.version for o in proto.opset_import},
        inputs=[_io(vi) for vi in graph_inputs],
        outputs=[_io(vi) for vi in proto.graph.output],
        parameters=params,
        parameter_bytes=nbytes,
        file_bytes=file_bytes,
        ops=dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        metadata=metadata,
        flops=flops,
        graph=helper.printable_graph(proto.graph) if graph else "",
        notes=notes,
    )
