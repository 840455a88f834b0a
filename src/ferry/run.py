"""Run an ONNX file on a backend with inputs from ``.npy``/``.npz`` files or generated from specs."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ferry._io import atomic_path
from ferry.backends import REGISTRY, Session
from ferry.errors import UserError
from ferry.specs import InputSpec, parse_input_spec


@dataclass
class RunResult:
    """Outputs of one run, with the backend that produced them."""

    outputs: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    seconds: float
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.outputs)

    def summary(self) -> list[dict[str, Any]]:
        """Per-output name, shape, dtype and value statistics."""
        rows = []
        for name, arr in self.outputs.items():
            finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
            rows.append(
                {
                    "name": name,
                    "shape": list(arr.shape),
                    "dtype": arr.dtype.name,
                    "min": float(finite.min()) if finite.size else None,
                    "max": float(finite.max()) if finite.size else None,
                    "mean": float(finite.mean()) if finite.size else None,
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "seconds": self.seconds, "settings": self.settings, "outputs": self.summary()}


def load_onnx(path: str | os.PathLike[str], *, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf's DecodeError and friends are not part of onnx's API
        raise UserError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); re-export it") from exc


def stored_specs(proto: onnx.ModelProto) -> tuple[InputSpec, ...]:
    """Input specs ferry stored at export time, or ``()`` for a file ferry did not write."""
    from ferry.export import read_metadata

    entries = read_metadata(proto).get("inputs") or []
    return tuple(parse_input_spec(e["spec"]).with_name(e["name"]) for e in entries)


def graph_specs(proto: onnx.ModelProto) -> tuple[InputSpec, ...]:
    """Specs from the graph's declared input shapes; only possible when they are all static."""
    specs = []
    for inp in proto.graph.input:
        tt = inp.type.tensor_type
        dims = []
        for d in tt.shape.dim:
            if not d.HasField("dim_value"):
                return ()
            dims.append(str(d.dim_value))
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name
        specs.append(parse_input_spec(",".join(dims) + f":{dtype}").with_name(inp.name))
    return tuple(specs)


def input_names(path: str | os.PathLike[str]) -> list[str]:
    """The graph's input names (initializers excluded), read from the file without a runtime."""
    from ferry.backends.reference import graph_io

    return [i.name for i in graph_io(load_onnx(path, load_external_data=False))[0]]


def read_arrays(paths: Sequence[str], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Read inputs from ``.npy`` files (in input order, or ``name=file.npy``) and ``.npz`` archives."""
    feeds: dict[str, np.ndarray] = {}
    positional = 0
    for item in paths:
        name, sep, file = item.partition("=")
        if not sep:
            name, file = "", item
        path = Path(file)
        if not path.is_file():
            raise UserError(f"input file not found: {path}")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    feeds.update({k: archive[k] for k in archive.files})
                continue
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"cannot read {path} as a numpy array file: {exc}") from exc
        if not name:
            if positional >= len(names):
                raise UserError(f"more input files than the model's {len(names)} input(s): {', '.join(names)}")
            name = names[positional]
            positional += 1
        feeds[name] = arr
    return feeds


def is_array_file(text: str) -> bool:
    return text.rpartition("=")[2].endswith((".npy", ".npz"))


def make_inputs(specs: Sequence[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs from specs (seeded normals for floats, uniform ints in range)."""
    rng = np.random.default_rng(seed)
    return {s.name: s.sample(rng) for s in specs}


def open_session(path: str | os.PathLike[str], backend: str = "onnxruntime", **options: Any) -> Session:
    """Load an ONNX file on an ONNX-consuming backend."""
    load_onnx(path, load_external_data=False)
    b = REGISTRY.get(backend)
    if b.artifact != "onnx":
        raise UserError(f"backend {backend!r} cannot run an ONNX file; use one of: onnxruntime")
    b.require()
    return b.load(os.fspath(path), **options)


def run(
    path: str | os.PathLike[str],
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    specs: Sequence[InputSpec] | None = None,
    backend: str = "onnxruntime",
    seed: int = 0,
) -> RunResult:
    """Run an ONNX model once.

    Args:
        path: the ONNX file.
        inputs: named arrays; when omitted, random inputs are made from ``specs``, else from the
            specs ferry stored at export, else from the graph's static input shapes.
        specs: input specs for random inputs; names default to the graph's input names.
        backend: the runtime to use.
        seed: seed for random inputs.

    Example:
        >>> out = ferry.run("sr.onnx", {"input": np.zeros((1, 1, 64, 64), np.float32)})
        >>> out.outputs["output"].shape
        (1, 1, 192, 192)
    """
    session = open_session(path, backend)
    names = [i.name for i in session.inputs]
    if inputs is None:
        if specs:
            if len(specs) != len(names):
                raise UserError(f"the model has {len(names)} input(s) ({', '.join(names)}), got {len(specs)} specs")
            chosen = [s if s.name else s.with_name(n) for s, n in zip(specs, names, strict=True)]
        else:
            proto = load_onnx(path, load_external_data=False)
            chosen = list(stored_specs(proto) or graph_specs(proto))
            if not chosen:
                want = "; ".join(i.describe() for i in session.inputs)
                raise UserError(f"the model has dynamic inputs ({want}); give --input files or shapes")
        inputs = make_inputs(chosen, seed)
    result = session.run(inputs)
    return RunResult(
        outputs=result.outputs, inputs=dict(inputs), seconds=result.seconds, backend=backend, settings=session.settings
    )


def save_outputs(outputs: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write named arrays to an ``.npz`` file atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        raise UserError(f"output {path} must end in .npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **dict(outputs))  # type: ignore[arg-type]
    return path
