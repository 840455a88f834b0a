"""PyTorch's value of each tensor of a file from the dynamo exporter, op by op.

The dynamo exporter names a file's tensors after the nodes of the model's torch.export program
(``upsample_bilinear2d_1``, ``getitem``, ``view_23``) and records on each ONNX node the FX node it
came from (``pkg.torch.onnx.fx_node``). Exporting the model again the way torch.onnx does (its
capture, its decompositions, the file's dynamic dims) gives the same program; running that program
node by node gives PyTorch's value of most tensors of the file, the functional calls inside a
``forward`` (``F.interpolate``) included. A program node is trusted only where its printed form is
the one the file recorded, so a program that came out different (another torch, other example
shapes) matches fewer tensors, never the wrong ones.

The cost is one export of the model (without the file's graph optimizations) and one forward pass;
only the values of tensors the caller asks for are kept.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import onnx
import torch
from torch import fx, nn

from ferry.export._exporters import TRACE_SIZE, dynamic_shapes_for

FX_NODE = "pkg.torch.onnx.fx_node"
_NAME = re.compile(r"%(\S+) :")


def recorded(proto: onnx.ModelProto) -> bool:
    """Whether the file carries the dynamo exporter's record of its FX nodes."""
    return any(p.key == FX_NODE for node in proto.graph.node for p in node.metadata_props)


def op_values(
    proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray], module: nn.Module, wanted: Collection[str]
) -> dict[str, np.ndarray]:
    """PyTorch's value of each ``wanted`` tensor of the file that the model's program computes.

    Raises:
        Exception: whatever torch.onnx's export or the program's run raise.
    """
    program = _program(proto, feeds, module)
    sources = _sources(proto, program, set(wanted))
    values = _run(program, feeds, set(sources.values()))
    return {tensor: values[name] for tensor, name in sources.items() if name in values}


def _program(proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray], module: nn.Module) -> Any:
    """The model's decomposed torch.export program, made as torch.onnx made the file's: the file's
    dynamic dims are dynamic here too (a dim of size 0 or 1 is traced at TRACE_SIZE, as ferry's
    exporter does, since torch.export would specialize it)."""
    shapes = {i.name: i.type.tensor_type.shape for i in proto.graph.input}
    dims: dict[str, Any] = {}
    dynamic: list[dict[int, Any] | None] = []
    examples = []
    for name, value in feeds.items():
        axes = {}
        for axis, dim in enumerate(shapes[name].dim if name in shapes else ()):
            if dim.dim_param:
                ident = re.sub(r"\W|^(?=\d)", "_", dim.dim_param)
                axes[axis] = dims.setdefault(dim.dim_param, torch.export.Dim(ident, min=1))
        dynamic.append(axes or None)
        examples.append(torch.from_numpy(_traceable(np.asarray(value), axes)))
    exported = torch.onnx.export(
        module,
        tuple(examples),
        dynamo=True,
        dynamic_shapes=dynamic_shapes_for(module, dynamic) if any(dynamic) else None,
        optimize=False,
        verbose=False,
    )
    if exported is None or exported.exported_program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return exported.exported_program


def _traceable(value: np.ndarray, axes: Collection[int]) -> np.ndarray:
    for axis in axes:
        if value.shape[axis] < TRACE_SIZE:
            shape = list(value.shape)
            shape[axis] = TRACE_SIZE
            value = np.broadcast_to(value if value.shape[axis] == 1 else np.zeros((), value.dtype), shape)
    return np.ascontiguousarray(value)


def _sources(proto: onnx.ModelProto, program: Any, wanted: set[str]) -> dict[str, str]:
    """ONNX tensor -> the name of the program node computing it: the tensor's own name; the graph
    outputs by position (torch.onnx renames them); a tensor renamed in the file, by the record on
    the last node exported from an FX node."""
    nodes = {n.name: n for n in program.graph.nodes}
    texts: set[str] = set()
    last: dict[str, onnx.NodeProto] = {}
    for node in proto.graph.node:
        text = next((p.value for p in node.metadata_props if p.key == FX_NODE), "")
        if match := _NAME.match(text):
            texts.add(text)
            last[match.group(1)] = node

    def faithful(name: str) -> bool:
        node = nodes.get(name)
        if node is None:
            return False
        # getitem of a tuple (BatchNorm's) makes no ONNX node: its source's record vouches for it
        source = node.args[0] if node.target is operator.getitem and node.args else None
        return node.format_node() in texts or (isinstance(source, fx.Node) and source.format_node() in texts)

    found: dict[str, str] = {}
    outputs = [s.arg.name for s in program.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
    if len(outputs) == len(proto.graph.output):
        for graph_output, name in zip(proto.graph.output, outputs, strict=True):
            if graph_output.name in wanted and faithful(name):
                found[graph_output.name] = name
    for node in proto.graph.node:
        found.update({t: t for t in node.output if t in wanted and t not in found and faithful(t)})
    for name, node in last.items():
        tensor = node.output[0] if len(node.output) == 1 else ""
        if tensor in wanted and tensor not in nodes and faithful(name):
            found.setdefault(tensor, name)
    return found


class _Recorder(fx.Interpreter):
    """Runs a graph and keeps the float outputs of the named nodes."""

    def __init__(self, module: fx.GraphModule, wanted: set[str]) -> None:
        super().__init__(module)
        self.wanted = wanted
        self.values: dict[str, np.ndarray] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted and isinstance(out, torch.Tensor) and out.is_floating_point():
            wide = out.detach().cpu()
            self.values[n.name] = (wide.float() if wide.element_size() < 4 else wide).numpy()
        return out


def _run(program: Any, feeds: Mapping[str, np.ndarray], wanted: set[str]) -> dict[str, np.ndarray]:
    """Run the program's graph (parameters lifted to inputs) on the feeds, keeping ``wanted``."""
    user = [torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()]
    args = []
    for spec in program.graph_signature.input_specs:
        if spec.kind.name == "USER_INPUT":
            args.append(user.pop(0))
        elif spec.target in program.state_dict:
            args.append(program.state_dict[spec.target])
        else:
            args.append(program.constants[spec.target])
    recorder = _Recorder(program.graph_module, wanted)
    with torch.inference_mode():
        recorder.run(*args)
    return recorder.values
