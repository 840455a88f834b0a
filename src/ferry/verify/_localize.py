"""Find where a failing model starts to diverge: the first ONNX node, and the PyTorch module and
source line it came from.

Three views of the model are compared, tensor by tensor, in graph order:

1. runtime vs ONNX semantics: intermediates of the failing backend against onnx's reference
   evaluator. Finds a runtime or optimizer bug, or lossy arithmetic (bf16).
2. PyTorch vs ONNX: PyTorch's values against the reference evaluator's. For a file from the
   dynamo exporter, op by op: the model's torch.export program, exported again, is run node by
   node and its values are matched to the file's tensors by name (see ``_fx``), so a functional
   call inside a ``forward`` (``F.interpolate``) is found at its own node. Otherwise (TorchScript
   files, or a model torch.export refuses) the outputs of each PyTorch module (forward hooks) are
   compared with the ONNX tensor ending that module's scope (read from the ``/scope/Op`` node
   names of the TorchScript exporter or the dynamo exporter's metadata). The model's own outputs
   are compared with the graph's in both cases. Finds a wrong export (training-mode BatchNorm, a
   resize mode that differs, a frozen branch) or a file edited after export; the node blamed is
   the first one between the last tensors that agreed and the first one that does not.

The earlier node in graph order wins. The reference evaluator is a third opinion, not an oracle:
where the runtime and PyTorch agree with each other and not with it, it is wrong there (onnx's
AveragePool with ``ceil_mode`` and a kernel larger than its input): that node is not blamed, the
runtime's value replaces the reference's from there on, and the report's ``hint`` says so.

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
from ferry.backends.torch import flatten_outputs
from ferry.compare import Tolerance, compare_arrays
from ferry.errors import UserError
from ferry.verify import _fx

# Graphs with more float intermediates than this are bisected instead of fully exposed.
EXPOSE_ALL_LIMIT = 400
# Places where the reference evaluator may be found wrong (and passed over) before the search stops.
REFERENCE_FIXES = 3
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


@dataclass
class _Graph:
    """A model with its typed float intermediates and their values per the ONNX reference, and
    the PyTorch model's modules and parameters (empty without the model) to attribute nodes."""

    proto: onnx.ModelProto
    typed: dict[str, onnx.ValueInfoProto]
    nodes: list[onnx.NodeProto]
    feeds: dict[str, np.ndarray]
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    owners: dict[str, list[str]] = field(default_factory=dict)
    #: tensor -> the position of the node computing it in the graph
    position: dict[str, int] = field(default_factory=dict)
    #: every float tensor: intermediates, graph inputs, initializers
    floats: set[str] = field(default_factory=set)
    #: tensors where the reference evaluator was found wrong, with the value fed to it instead
    fixed: dict[str, np.ndarray] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Hit:
    """Where two views of the model first differ: the tensor compared, and the node blamed."""

    compared: str
    tensor: str
    node: onnx.NodeProto
    position: int
    expected: np.ndarray
    got: np.ndarray
    scope: str | None = None  # the module whose output the tensor holds, when known so


@dataclass
class _Expect:
    """PyTorch's value of a tensor; several where modules were folded into one node (any may hold)."""

    values: list[np.ndarray]
    scope: str | None = None


def _prepare(proto: onnx.ModelProto, feeds: Mapping[str, np.ndarray], module: torch.nn.Module | None) -> _Graph:
    """Infer types and run the reference evaluator once; the comparisons read from this."""
    typed = _typed_values(proto)
    graph = _Graph(proto, typed, _candidates(proto, typed), dict(feeds))
    if module is not None:
        graph.modules, graph.owners = dict(module.named_modules()), _parameter_owners(module)
    graph.position = {o: i for i, node in enumerate(proto.graph.node) for o in node.output if o}
    graph.floats = {n for n, vi in typed.items() if vi.type.tensor_type.elem_type in _FLOAT_TYPES}
    graph.floats |= {t.name for t in proto.graph.initializer if t.data_type in _FLOAT_TYPES}
    graph.floats |= {i.name for i in proto.graph.input if i.type.tensor_type.elem_type in _FLOAT_TYPES}
    graph.truth = _reference_values(graph)
    return graph


def _reference_values(graph: _Graph) -> dict[str, np.ndarray]:
    """The reference evaluator's value of every candidate tensor; a tensor in ``graph.fixed`` is
    fed to it (the node computing it writes elsewhere) instead of computed."""
    from onnx.reference import ReferenceEvaluator

    names = [n.output[0] for n in graph.nodes]
    if not names:
        return {}
    proto = graph.proto
    if graph.fixed:
        proto = onnx.ModelProto()
        proto.CopyFrom(graph.proto)
        for node in proto.graph.node:
            node.output[:] = [f"{o}.ferry_unused" if o in graph.fixed else o for o in node.output]
        for name in graph.fixed:
            elem_type = graph.typed[name].type.tensor_type.elem_type
            proto.graph.input.append(onnx.helper.make_tensor_value_info(name, elem_type, None))
    values = ReferenceEvaluator(proto).run(names, {**graph.feeds, **graph.fixed})
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


class _Runtime:
    """The failing backend's values of the graph's float tensors, run for when first asked, kept."""

    def __init__(self, backend: str, graph: _Graph) -> None:
        self.backend = backend
        self.graph = graph
        self.values: dict[str, np.ndarray] = {}

    def get(self, names: list[str]) -> dict[str, np.ndarray]:
        missing = [n for n in names if n not in self.values]
        if missing:
            exposed = _exposed(self.graph.proto, missing, self.graph.typed)
            self.values.update(_run_backend(self.backend, exposed, self.graph.feeds))
        return {n: self.values[n] for n in names}


def _first_runtime_divergence(graph: _Graph, runtime: _Runtime, tol: Tolerance) -> _Hit | None:
    names = [n.output[0] for n in graph.nodes]
    if not names:
        return None

    def bad(i: int) -> bool:
        return _diverges(graph.truth[names[i]], runtime.get([names[i]])[names[i]], tol)

    if len(names) <= EXPOSE_ALL_LIMIT:
        runtime.get(names)
        first = next((i for i in range(len(names)) if bad(i)), None)
    else:
        first = _bisect(len(names), bad)
    if first is None:
        return None
    name = names[first]
    got = runtime.get([name])[name]
    compared = f"{runtime.backend} vs onnx reference"
    return _Hit(compared, name, graph.nodes[first], graph.position[name], graph.truth[name], got)


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


def _torch_values(graph: _Graph, module: torch.nn.Module) -> tuple[dict[str, _Expect], list[str]]:
    """PyTorch's values to compare the file's tensors with: op by op for a file from the dynamo
    exporter, else each module's output and the model's outputs; and why op by op was not done."""
    notes = []
    if _fx.recorded(graph.proto):
        try:
            values = _fx.op_values(graph.proto, graph.feeds, module, graph.truth.keys())
        except Exception as exc:  # torch.export can refuse a model: module outputs still tell much
            values = {}
            notes.append(f"compared module outputs: exporting the model again failed: {type(exc).__name__}: {exc}")
        if values:
            return {name: _Expect([v]) for name, v in values.items()}, notes
        notes = notes or ["compared module outputs: no tensor of the file matched the model's program"]
    return _module_values(graph, module), [n[:300] for n in notes]


def _module_values(graph: _Graph, module: torch.nn.Module) -> dict[str, _Expect]:
    """Each PyTorch module's output at the ONNX tensor that ends its scope, and the model's outputs
    at the graph's.

    A module folded into the node before it (TorchScript's Conv + BatchNorm keeps the Conv's
    name) has no node of its own: the node then holds the output of the modules called right
    after, which may hold there too.
    """
    ends = _segment_ends(graph)
    calls, outputs = _module_outputs(module, graph.feeds, graph.modules)
    expects: dict[str, _Expect] = {}
    seen: dict[str, int] = {}
    for i, (name, tensor) in enumerate(calls):
        if name not in ends:
            continue
        k = seen.get(name, 0)
        seen[name] = k + 1
        if k >= len(ends[name]):
            continue
        end = ends[name][k].output[0]
        shape = graph.truth[end].shape
        if tuple(tensor.shape) != shape:
            continue
        folded = itertools.takewhile(lambda call: call[0] not in ends, calls[i + 1 :])
        refs = [_numpy(tensor), *(_numpy(t) for _, t in folded if tuple(t.shape) == shape)]
        expects.setdefault(end, _Expect(refs, name))
    names = [o.name for o in graph.proto.graph.output]
    if len(outputs) == len(names):
        for name, value in zip(names, outputs, strict=True):
            if name in graph.truth:
                expects.setdefault(name, _Expect([value]))
    return expects


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    wide = tensor.detach().cpu()
    return (wide.float() if wide.is_floating_point() and wide.element_size() < 4 else wide).numpy()


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
) -> tuple[list[tuple[str, torch.Tensor]], list[np.ndarray]]:
    """The tensor each call of the named submodules returned, in the order the calls ended; and
    the model's outputs, flattened as verify flattens them (none if it cannot)."""
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
            result = module(*[torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()])
    finally:
        for h in hooks:
            h.remove()
    try:
        outputs = [_numpy(t) for _, t in flatten_outputs(result)]
    except UserError:  # an output type verify would have refused as well
        outputs = []
    return calls, outputs


def _first_torch_divergence(graph: _Graph, expects: Mapping[str, _Expect], tol: Tolerance) -> _Hit | None:
    """The first tensor, in graph order, whose PyTorch value the reference's does not match."""
    agreed: set[str] = set()
    for node in graph.nodes:
        tensor = node.output[0]
        expect, value = expects.get(tensor), graph.truth[tensor]
        if expect is None or expect.values[0].shape != value.shape:
            continue
        refs = [r for r in expect.values if r.shape == value.shape]
        if any(not _diverges(r, value, tol) for r in refs):
            agreed.add(tensor)
            continue
        closest = min(refs, key=lambda r: _max_diff(r, value))
        # A module's output is blamed on its last node; an op's on the first node computing it.
        position = graph.position[tensor] if expect.scope is not None else _first_uncovered(graph, tensor, agreed)
        blamed = graph.proto.graph.node[position]
        return _Hit("pytorch vs onnx", tensor, blamed, position, closest, value, expect.scope)
    return None


def _first_uncovered(graph: _Graph, tensor: str, agreed: Collection[str]) -> int:
    """The position of the first node computing ``tensor`` from tensors that agreed with PyTorch:
    of its node and the float nodes feeding it back to those tensors, the earliest. A node added
    to a file by hand is found, not the next op compared after it."""
    nodes = graph.proto.graph.node
    found = {graph.position[tensor]}
    stack = list(found)
    while stack:
        for name in nodes[stack.pop()].input:
            i = graph.position.get(name)
            if i is None or i in found or name in agreed or name not in graph.floats:
                continue
            if any(x in graph.floats for x in nodes[i].input):  # not a constant nor shape arithmetic
                found.add(i)
                stack.append(i)
    return min(found)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if a.size else 0.0


def _reference_wrong(
    graph: _Graph, hit: _Hit, runtime: _Runtime | None, expects: Mapping[str, _Expect], tol: Tolerance
) -> str | None:
    """Why the reference evaluator, not the node, is wrong at the hit's tensor, if it is: the
    runtime and PyTorch agree there, ten times more closely than either agrees with it."""
    expect = expects.get(hit.tensor)
    if runtime is None or expect is None:
        return None
    ref = graph.truth[hit.tensor]
    got = runtime.get([hit.tensor])[hit.tensor]
    pts = [v for v in expect.values if v.shape == ref.shape]
    if not pts or got.shape != ref.shape:
        return None
    pt = min(pts, key=lambda v: _max_diff(v, got))
    spread, off = _max_diff(pt, got), min(_max_diff(ref, got), _max_diff(ref, pt))
    if _diverges(pt, got, tol) or not (_diverges(pt, ref, tol) and _diverges(got, ref, tol)) or off < 10 * spread:
        return None
    node = graph.proto.graph.node[graph.position[hit.tensor]]
    return (
        f"the onnx reference evaluator is wrong at {node.name} ({node.op_type}): {runtime.backend} and PyTorch "
        f"agree there and it differs by {off:.3g}; not blamed, {runtime.backend}'s value used from there on"
    )


def _search(
    graph: _Graph, runtime: _Runtime | None, expects: Mapping[str, _Expect], tol: Tolerance
) -> tuple[_Hit | None, list[str]]:
    """The earliest divergence of either comparison, past the places where the reference
    evaluator is the one that is wrong (a few at most: then the search gives up)."""
    notes: list[str] = []
    for _ in range(REFERENCE_FIXES + 1):
        hits = [_first_runtime_divergence(graph, runtime, tol) if runtime is not None else None]
        hits.append(_first_torch_divergence(graph, expects, tol))
        found = [h for h in hits if h is not None]
        if not found:
            return None, notes
        hit = min(found, key=lambda h: h.position)  # the runtime's first on a tie
        wrong = _reference_wrong(graph, hit, runtime, expects, tol)
        if wrong is None or runtime is None:
            return hit, notes
        notes.append(wrong)
        if len(notes) > REFERENCE_FIXES:
            break
        graph.fixed[hit.tensor] = runtime.get([hit.tensor])[hit.tensor]
        graph.truth = _reference_values(graph)
    notes.append(f"inconclusive: the reference evaluator is wrong at more than {REFERENCE_FIXES} places")
    return None, notes


def _node_report(hit: _Hit, graph: _Graph) -> dict[str, Any]:
    """What a diverging node is and where it came from (the hit's ``scope``: the module whose
    output it holds, when known better than from the node's own record)."""
    node = hit.node
    scope = hit.scope if hit.scope is not None else module_path(node, graph.modules)
    module, modules = _attribution(node, scope, graph.owners)
    report = {
        "compared": hit.compared,
        "node": node.name,
        "op_type": node.op_type,
        "output": node.output[0],
        "module": module,
        "source": _source_line(node),
        "max_abs_diff": _max_diff(hit.expected, hit.got),
    }
    if module and module in graph.modules:
        report["module_class"] = type(graph.modules[module]).__name__
    if len(modules) > 1:
        report["modules"] = modules
    return report


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
        differed), ``node``, ``op_type``, ``output``, ``module``, ``source`` and ``max_abs_diff``;
        ``hint`` says what to do or which node the reference evaluator got wrong (``compared`` is
        "none" with only a ``hint`` when that is all there is), ``notes`` what was not compared.
    """
    try:
        graph = _prepare(onnx.load(os.fspath(path)), feeds, module)
        runtime = _Runtime(backend, graph) if backend != "reference" and graph.nodes else None
        expects, notes = _torch_values(graph, module) if module is not None else ({}, [])
        hit, hints = _search(graph, runtime, expects, tolerance)
        report: dict[str, Any] = _node_report(hit, graph) if hit is not None else {"compared": "none"}
    except Exception as exc:  # localization is best effort: never hide the verdict behind it
        return {"compared": "none", "error": f"{type(exc).__name__}: {exc}"[:300]}
    if hit is not None and _training_mode(hit.node):
        hints.insert(0, f"{hit.node.op_type} runs in training mode: export the model after model.eval()")
    if hints:
        report["hint"] = "; ".join(hints)
    if notes:
        report["notes"] = notes
    return report if hit is not None or hints else None


def _training_mode(node: onnx.NodeProto) -> bool:
    if node.op_type == "BatchNormalization":
        return any(a.name == "training_mode" and a.i for a in node.attribute)
    # Dropout's third input is training_mode; a non-empty one means it was exported for training.
    return node.op_type == "Dropout" and len(node.input) > 2 and bool(node.input[2])
