"""Find where a failing model starts to diverge: the first ONNX node, and the PyTorch module and
source line it came from.

Two comparisons, in this order:

1. runtime vs ONNX semantics: intermediates of the failing backend against onnx's reference
   evaluator. Finds a runtime or optimizer bug, or lossy arithmetic (bf16).
2. PyTorch vs ONNX: outputs of each PyTorch module (forward hooks) against the ONNX tensor the
   exporter produced for that module (read from the node metadata of the dynamo exporter, or the
   ``/scope/Op`` node names of the TorchScript exporter). Finds a wrong export (training-mode
   BatchNorm, a resize mode that differs, a frozen branch).

Small graphs expose every intermediate in one run; big ones are bisected, one tensor per run.

A node is attributed to a module by the exporter's record of where it came from: the dynamo
exporter's ``pkg.torch.onnx.name_scopes`` (full module paths, ``layer3.0.downsample.1``) or the
TorchScript exporter's node name (``/layer3/layer3.0/downsample/downsample.0/Conv``, each part a
module's name from its last non-numeric atom). Graph optimizers fold ops into one node and keep the
metadata of the last (a Conv folded with the BatchNorm after it says "BatchNorm"): when a node's
weights are another module's parameters, the node is blamed on that module, and ``modules`` lists
every module the node computes for.
"""

from __future__ import annotations

import ast
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import shape_inference

from ferry.backends import REGISTRY
from ferry.compare import Tolerance, compare_arrays

# Graphs with more float intermediates than this are bisected instead of fully exposed.
EXPOSE_ALL_LIMIT = 400
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


def _typed_values(proto: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = shape_inference.infer_shapes(proto)
    return {vi.name: vi for vi in [*inferred.graph.value_info, *inferred.graph.output]}


def _candidates(proto: onnx.ModelProto, typed: Mapping[str, onnx.ValueInfoProto]) -> list[onnx.NodeProto]:
    """Nodes (in topological order) whose first output is a typed float tensor."""
    out = []
    for node in proto.graph.node:
        if node.op_type == "Constant" or not node.output or node.output[0] not in typed:
            continue
        if typed[node.output[0]].type.tensor_type.elem_type in _FLOAT_TYPES:
            out.append(node)
    return out


def _exposed(proto: onnx.ModelProto, names: list[str], typed: Mapping[str, onnx.ValueInfoProto]) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            vi = onnx.ValueInfoProto()
            vi.name = name
            vi.type.tensor_type.elem_type = typed[name].type.tensor_type.elem_type
            model.graph.output.append(vi)
    return model


def _run_backend(backend: str, model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="ferry-localize-") as tmp:
        path = Path(tmp) / "exposed.onnx"
        onnx.save_model(model, str(path))
        return REGISTRY.get(backend).load(str(path)).run(feeds).outputs


def _diverges(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> bool:
    # Intermediates can be large: scale the absolute tolerance with the tensor's magnitude.
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return not compare_arrays("t", ref, got, Tolerance(tol.rtol, tol.atol * max(1.0, scale))).ok


_FRAME = re.compile(r'\s*File "([^"]+)", line (\d+), in ')
_TORCH_DIR = os.path.join(os.path.realpath(os.path.dirname(torch.__file__)), "")


def _frames(trace: str) -> list[tuple[str, str, str]]:
    """(file, line, code) of each frame of a Python stack trace; code is '' where the trace has
    no source line (code run from a string)."""
    lines = trace.splitlines()
    frames = []
    for i, text in enumerate(lines):
        m = _FRAME.match(text)
        if m:
            code = lines[i + 1].strip() if i + 1 < len(lines) and not _FRAME.match(lines[i + 1]) else ""
            frames.append((m.group(1), m.group(2), code))
    return frames


def _source_line(node: onnx.NodeProto) -> str:
    """The innermost frame of the node's stack trace outside PyTorch: the model's own line (the
    first frames are the outer modules' ``forward``, the last ones ``torch.nn``'s); '' if none."""
    meta = {p.key: p.value for p in node.metadata_props}
    own = [
        f
        for f in _frames(meta.get("pkg.torch.onnx.stack_trace", ""))
        if not os.path.realpath(f[0]).startswith(_TORCH_DIR)
    ]
    if not own:
        return ""
    file, line, code = own[-1]
    return f"{os.path.basename(file)}:{line}: {code}" if code else f"{os.path.basename(file)}:{line}"


def module_path(node: onnx.NodeProto, modules: Collection[str] = ()) -> str | None:
    """The PyTorch module a node was exported from ('' for the root), when the exporter said so.

    Args:
        node: a node of a file written by torch.onnx (dynamo or TorchScript).
        modules: the model's module paths (``named_modules``), to resolve TorchScript's names.
    """
    meta = {p.key: p.value for p in node.metadata_props}
    if "pkg.torch.onnx.name_scopes" in meta:
        try:
            scopes = [str(s) for s in ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])]
        except (ValueError, SyntaxError):
            return None
        # ['', 'layer1', 'layer1.0', 'layer1.0.relu', 'relu_1']: the root, each module's full
        # path, the node's own name last; a repeated call may carry an '@N' suffix.
        return re.sub(r"@\d+$", "", scopes[-2]) if len(scopes) >= 2 else None
    if node.name.startswith("/"):
        return _torchscript_path(node.name.strip("/").split("/")[:-1], modules)
    return None


def _torchscript_path(parts: list[str], modules: Collection[str]) -> str:
    """Full module path from TorchScript's scope names: ``layer1``, ``layer1.0`` (a Sequential's
    child: the parent's name and the index), ``conv1`` -> ``layer1.0.conv1``; a repeated call
    is ``relu_1``. Ambiguous readings are settled by the model's module paths when given."""
    path, previous = "", ""
    for part in parts:
        child = part[len(previous) + 1 :] if previous and part.startswith(previous + ".") else ""
        candidates = [f"{path}.{part}" if path else part]
        if child and all(atom.isdigit() for atom in child.split(".")):
            candidates.insert(0, f"{path}.{child}")
        repeated = re.sub(r"_\d+$", "", part)
        if repeated != part:
            candidates.append(f"{path}.{repeated}" if path else repeated)
        path = next((c for c in candidates if c in modules), candidates[0])
        previous = part
    return path


def _attribution(
    node: onnx.NodeProto, scope: str | None, owners: Mapping[str, list[str]]
) -> tuple[str | None, list[str]]:
    """The module a node is blamed on and every module it computes for (scope: its exporter's
    record). A node whose weights are another module's parameters was folded into the scope's op
    by a graph optimizer (a Conv and its BatchNorm): the weights' module did the node's op."""
    holders = list(dict.fromkeys(m for name in node.input for m in owners.get(name, ())))
    if not holders or scope in holders:
        return scope, [scope] if scope is not None else []
    return holders[0], holders if scope is None else [*holders, scope]


def _parameter_owners(module: torch.nn.Module | None) -> dict[str, list[str]]:
    """Parameter or buffer name (the dynamo exporter's initializer names) -> the modules holding it
    (several for tied weights)."""
    if module is None:
        return {}
    aliases: dict[int, list[str]] = {}
    for name, value in [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]:
        aliases.setdefault(id(value), []).append(name)
    owners: dict[str, list[str]] = {}
    for names in aliases.values():
        holders = list(dict.fromkeys(n.rpartition(".")[0] for n in names))
        owners.update(dict.fromkeys(names, holders))
    return owners


def _node_report(
    node: onnx.NodeProto, ref: np.ndarray, got: np.ndarray, compared: str, graph: _Graph, scope: str | None = None
) -> dict[str, Any]:
    """What a diverging node is and where it came from (``scope``: the module whose output it
    holds, when known better than from the node's own record)."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    if scope is None:
        scope = module_path(node, graph.modules)
    module, modules = _attribution(node, scope, graph.owners)
    report = {
        "compared": compared,
        "node": node.name,
        "op_type": node.op_type,
        "output": node.output[0],
        "module": module,
        "source": _source_line(node),
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
    }
    if module and module in graph.modules:
        report["module_class"] = type(graph.modules[module]).__name__
    if len(modules) > 1:
        report["modules"] = modules
    return report


@dataclass
class _Graph:
    """A model with its typed float intermediates and their values per the ONNX reference, and
    the PyTorch model's modules and parameters (empty without the model) to attribute nodes."""

    proto: onnx.ModelProto
    typed: dict[str, onnx.ValueInfoProto]
    nodes: list[onnx.NodeProto]
    truth: dict[str, np.ndarray]
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    owners: dict[str, list[str]] = field(default_factory=dict)


def _prepare(proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray], module: torch.nn.Module | None) -> _Graph:
    """Infer types and run the reference evaluator once; both comparisons read from this."""
    from onnx.reference import ReferenceEvaluator

    typed = _typed_values(proto)
    nodes = _candidates(proto, typed)
    names = [n.output[0] for n in nodes]
    values = ReferenceEvaluator(proto).run(names, dict(feeds)) if names else []
    truth = {n: np.asarray(v) for n, v in zip(names, values, strict=True)}
    modules = dict(module.named_modules()) if module is not None else {}
    return _Graph(proto, typed, nodes, truth, modules, _parameter_owners(module))


def _first_runtime_divergence(
    graph: _Graph, feeds: Mapping[str, np.ndarray], backend: str, tol: Tolerance
) -> dict[str, Any] | None:
    if backend == "reference" or not graph.nodes:
        return None
    proto, typed, nodes, truth = graph.proto, graph.typed, graph.nodes, graph.truth
    names = [n.output[0] for n in nodes]

    def check(indices: list[int]) -> list[bool]:
        got = _run_backend(backend, _exposed(proto, [names[i] for i in indices], typed), feeds)
        return [_diverges(truth[names[i]], got[names[i]], tol) for i in indices]

    if len(nodes) <= EXPOSE_ALL_LIMIT:
        flags = check(list(range(len(nodes))))
        first = next((i for i, bad in enumerate(flags) if bad), None)
    else:
        first = _bisect(len(nodes), lambda i: check([i])[0])
    if first is None:
        return None
    got = _run_backend(backend, _exposed(proto, [names[first]], typed), feeds)[names[first]]
    return _node_report(nodes[first], truth[names[first]], got, f"{backend} vs onnx reference", graph)


def _bisect(count: int, bad: Callable[[int], bool]) -> int | None:
    """Smallest index for which ``bad`` holds, assuming divergence persists downstream."""
    if not bad(count - 1):
        return None
    lo, hi = 0, count - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if bad(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _segment_ends(graph: _Graph) -> dict[str, list[onnx.NodeProto]]:
    """Module path -> the node ending each of its calls: segments are maximal runs of consecutive
    nodes in one module's scope. Nodes the exporter did not attribute are passed over."""
    known = [(n, p) for n in graph.nodes if (p := module_path(n, graph.modules)) is not None]
    ends: dict[str, list[onnx.NodeProto]] = {}
    for i, (node, path) in enumerate(known):
        nxt = known[i + 1][1] if i + 1 < len(known) else None
        for m in _prefixes(path, graph.modules):
            if nxt is None or not (nxt == m or nxt.startswith(m + ".")):
                ends.setdefault(m, []).append(node)
    return ends


def _module_outputs(
    module: torch.nn.Module, feeds: Mapping[str, np.ndarray], names: Collection[str]
) -> list[tuple[str, torch.Tensor]]:
    """The tensor each call of the named submodules returned, in the order the calls ended."""
    calls: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, sub in module.named_modules():
        if name and name in names:

            def hook(_m: torch.nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    calls.append((name, out.detach().clone()))

            hooks.append(sub.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()])
    finally:
        for h in hooks:
            h.remove()
    return calls


def _first_export_divergence(
    graph: _Graph, feeds: Mapping[str, np.ndarray], module: torch.nn.Module, tol: Tolerance
) -> dict[str, Any] | None:
    """Compare each PyTorch module's output with the ONNX tensor that ends its scope.

    A module folded into the node before it (TorchScript's Conv + BatchNorm keeps the Conv's
    name) has no node of its own: the node then holds the output of the modules called right
    after, which is what it is compared with too.
    """
    ends = _segment_ends(graph)
    if not ends:
        return None
    calls = _module_outputs(module, feeds, graph.modules)
    seen: dict[str, int] = {}
    for i, (name, tensor) in enumerate(calls):
        if name not in ends:
            continue
        k = seen.get(name, 0)
        seen[name] = k + 1
        if k >= len(ends[name]):
            continue
        node = ends[name][k]
        onnx_value = graph.truth[node.output[0]]
        ref = tensor.numpy()
        if ref.shape != onnx_value.shape or not _diverges(ref, onnx_value, tol):
            continue
        folded = itertools.takewhile(lambda call: call[0] not in ends, calls[i + 1 :])
        refs = [ref, *(t.numpy() for _, t in folded if t.shape == onnx_value.shape)]
        if any(not _diverges(r, onnx_value, tol) for r in refs[1:]):
            continue  # the node holds a folded module's output, and agrees with it
        closest = min(refs, key=lambda r: float(np.max(np.abs(r - onnx_value))) if r.size else 0.0)
        return _node_report(node, closest, onnx_value, "pytorch vs onnx", graph, scope=name)
    return None


def _prefixes(path: str, modules: Collection[str]) -> list[str]:
    """Every registered submodule on the way to ``path`` (not the root), innermost first."""
    parts = path.split(".") if path else []
    out = [".".join(parts[:k]) for k in range(len(parts), 0, -1)]
    return [p for p in out if p in modules]


def locate_divergence(
    path: str | os.PathLike[str],
    feeds: Mapping[str, np.ndarray],
    *,
    backend: str,
    module: torch.nn.Module | None,
    tolerance: Tolerance,
) -> dict[str, Any] | None:
    """Find the first diverging node for one failing sample.

    Returns:
        ``None`` when nothing could be localized, else a dict with ``compared`` (which pair
        differed), ``node``, ``op_type``, ``output``, ``module``, ``source`` and ``max_abs_diff``.
    """
    proto = onnx.load(os.fspath(path))
    order = {node.output[0]: i for i, node in enumerate(proto.graph.node) if node.output}
    try:
        graph = _prepare(proto, feeds, module)
        found = [_first_runtime_divergence(graph, feeds, backend, tolerance)]
        if module is not None:
            found.append(_first_export_divergence(graph, feeds, module, tolerance))
    except Exception as exc:  # localization is best effort: never hide the verdict behind it
        return {"compared": "none", "error": f"{type(exc).__name__}: {exc}"[:300]}
    hits = sorted((f for f in found if f), key=lambda f: order.get(f["output"], len(order)))
    if not hits:
        return None
    first = hits[0]
    node = proto.graph.node[order[first["output"]]]
    if _training_mode(node):
        first["hint"] = f"{node.op_type} runs in training mode: export the model after model.eval()"
    return first


def _training_mode(node: onnx.NodeProto) -> bool:
    if node.op_type == "BatchNormalization":
        return any(a.name == "training_mode" and a.i for a in node.attribute)
    # Dropout's third input is training_mode; a non-empty one means it was exported for training.
    return node.op_type == "Dropout" and len(node.input) > 2 and bool(node.input[2])
