"""Which input shapes, batches and threads to time, and the model to time them on."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from ferry import subject
from ferry.backends import REGISTRY
from ferry.bench._results import BenchConfig
from ferry.errors import UserError
from ferry.models import LoadedModel, forward_arg_names
from ferry.specs import Dim, InputSpec
from ferry.subject import Subject


def shape_label(specs: Sequence[InputSpec]) -> str:
    if len(specs) == 1:
        return "x".join(map(str, specs[0].shape))
    return " ".join(f"{s.name}={'x'.join(map(str, s.shape))}" for s in specs)


def static_batch(proto: onnx.ModelProto) -> dict[str, int]:
    """Inputs whose axis 0 the graph fixes to a size."""
    fixed = {}
    for inp in proto.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            fixed[inp.name] = dims[0].dim_value
    return fixed


def _with_batch(specs: Sequence[InputSpec], batch: int, fixed: Mapping[str, int]) -> tuple[InputSpec, ...]:
    out = []
    for s in specs:
        if not s.dims:
            out.append(s)
            continue
        if s.name in fixed and fixed[s.name] != batch:
            raise UserError(
                f"axis 0 of input {s.name!r} is static ({fixed[s.name]}) in the ONNX file; cannot benchmark batch"
                f" {batch} (export with a dynamic batch, e.g. --input batch=1,...)"
            )
        out.append(replace(s, dims=(Dim(batch, s.dims[0].name or "batch"), *s.dims[1:])))
    return tuple(out)


def _groups(inputs: Sequence[InputSpec], names: Sequence[str]) -> list[tuple[InputSpec, ...]]:
    """Split a flat list of specs into one configuration per size, named after the inputs."""
    n = len(names)
    if n == 0 or len(inputs) % n:
        raise UserError(
            f"the model has {n} input(s) ({', '.join(names)}) but {len(inputs)} --input specs were given;"
            f" give {n} per size, in input order"
        )
    return [
        tuple(s.with_name(name) for s, name in zip(inputs[i : i + n], names, strict=True))
        for i in range(0, len(inputs), n)
    ]


def configurations(
    cfg: BenchConfig, declared: Sequence[InputSpec], onnx_names: Sequence[str], fixed: Mapping[str, int]
) -> list[tuple[InputSpec, ...]]:
    base = _groups(cfg.inputs, onnx_names) if cfg.inputs else [tuple(declared)]
    configs = []
    for specs in base:
        named = tuple(s.with_name(n) for s, n in zip(specs, onnx_names, strict=True))
        for batch in cfg.batches or [None]:
            configs.append(named if batch is None else _with_batch(named, batch, fixed))
    return configs


def export_specs(groups: Sequence[Sequence[InputSpec]], *, dynamic_batch: bool) -> tuple[InputSpec, ...]:
    """Specs to export a model with so that every benchmarked size fits: the first size, with
    each axis that differs between sizes (and axis 0 when batches vary) made dynamic."""
    first = groups[0]
    out = []
    for k, spec in enumerate(first):
        dims = []
        for axis, d in enumerate(spec.dims):
            varies = any(len(g[k].dims) != len(spec.dims) or g[k].dims[axis].size != d.size for g in groups)
            if d.name is None and (varies or (axis == 0 and dynamic_batch)):
                d = Dim(d.size, "batch" if axis == 0 else f"{spec.name}_dim{axis}")
            dims.append(d)
        out.append(replace(spec, dims=tuple(dims)))
    return tuple(out)


def resolve_subject(
    model_or_file: str | os.PathLike[str] | LoadedModel,
    work_dir: Path,
    *,
    model: str | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] = (),
    dynamic_batch: bool = False,
) -> Subject:
    """The PyTorch model (when known), an ONNX file of it and the export time.

    An ``.onnx`` path is used as is (``model`` adds its PyTorch source for the eager baseline);
    anything else is loaded as a model source and exported into ``work_dir``, with its declared
    inputs, or else with ``inputs`` (specs for one or more sizes, see :func:`export_specs`).
    """
    if subject.is_onnx_file(model_or_file):
        return subject.resolve(model_or_file, model=model, args=args, weights=weights)
    loaded = subject.load(model_or_file, args=args, weights=weights)
    specs = None
    if not loaded.inputs:
        if not inputs:
            raise UserError(f"{loaded.source} declares no inputs; give --input specs, one per forward() argument")
        specs = export_specs(_groups(inputs, forward_arg_names(loaded.module)), dynamic_batch=dynamic_batch)
    return subject.resolve(loaded, work_dir=work_dir, export_inputs=specs)


def default_backends(has_model: bool) -> list[str]:
    """What ``--backends all`` times: eager when there is a model, every installed ONNX runtime
    except the reference evaluator (a correctness oracle, orders of magnitude slower), and the
    runtimes that lower the PyTorch module themselves (ExecuTorch) when there is a model."""
    names = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "onnx" and n != "reference"]
    lowered = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "module"]
    return (["torch"] if has_model else []) + names + (lowered if has_model else [])
