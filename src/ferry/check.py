"""Validity check of an ONNX file: opsets this onnx knows, onnx.checker (full) and strict shape inference."""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from ferry import onnx_file


@dataclass
class CheckResult:
    """Outcome of :func:`check`; truthy when the model is valid."""

    path: Path
    valid: bool
    message: str
    ir_version: int = 0
    opsets: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    inferred_tensors: int = 0
    nodes: int = 0
    #: what does not make the model invalid but limits where it runs (operator domains that are
    #: not ONNX's own)
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.valid

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):  # onnx's message quotes a name whose bytes are not UTF-8
        return "the model holds a name or string that is not UTF-8 text (a damaged file?)"
    return " ".join(str(exc).split())[:600]


@functools.cache
def _known_opsets() -> dict[str, int]:
    """The newest opset of every operator domain this onnx defines (``ai.onnx`` for the default one)."""
    known: dict[str, int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        domain = schema.domain or "ai.onnx"
        known[domain] = max(known.get(domain, 0), schema.since_version)
    known["ai.onnx"] = onnx.defs.onnx_opset_version()
    known["ai.onnx.ml"] = onnx.defs.onnx_ml_opset_version()
    known.setdefault("ai.onnx.training", 1)
    return known


def _opset_problems(opsets: dict[str, int], local: set[str]) -> tuple[str, list[str]]:
    """An opset newer than this onnx knows (the model is then not checkable: invalid), and a
    warning per domain that is neither an ONNX one nor one of the model's own functions (``local``)."""
    known = _known_opsets()
    warnings = []
    for domain, version in opsets.items():
        if domain in local:
            continue
        if domain not in known:
            warnings.append(
                f"operator domain {domain!r} is not part of ONNX: only runtimes that implement it can run the model"
            )
        elif not 1 <= version <= known[domain]:
            newest = known[domain]
            return (
                f"opset {domain} {version} is not a released opset (onnx {onnx.__version__} knows 1 to {newest});"
                f" re-export with an opset up to {newest}"
            ), warnings
    return "", warnings


def check(path: str | os.PathLike[str]) -> CheckResult:
    """Run ``onnx.checker.check_model(full_check=True)`` and strict shape inference on a file.

    Args:
        path: an ONNX file (external data beside it is found automatically).

    Returns:
        A result with ``valid`` False and the checker's message when the model is invalid.

    Raises:
        UserError: when the file is missing, empty, or is not an ONNX protobuf at all.

    Example:
        >>> ferry.check("sr.onnx").valid
        True
    """
    path = Path(path)
    proto = onnx_file.load(path, load_external_data=False)
    opsets = {(o.domain or "ai.onnx"): o.version for o in proto.opset_import}
    base = CheckResult(
        path,
        True,
        "valid: onnx.checker (full) and shape inference passed",
        ir_version=proto.ir_version,
        opsets=opsets,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        nodes=len(proto.graph.node),
    )
    problem, warnings = _opset_problems(opsets, {f.domain for f in proto.functions})
    base.warnings = warnings
    if problem:
        return replace(base, valid=False, message=problem)
    try:
        # The path form handles models with external data and over 2 GB.
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as exc:
        return replace(base, valid=False, message=f"onnx.checker: {_one_line(exc)}")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError) as exc:
        return replace(base, valid=False, message=f"shape inference: {_one_line(exc)}")
    return replace(base, inferred_tensors=len(inferred.graph.value_info))
