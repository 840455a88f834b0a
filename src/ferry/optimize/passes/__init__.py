"""Optimization passes, one per module. A pass reads one ONNX file and writes the next one beside
it, and says what it did (:class:`PassResult`); ``optimize`` chains them and then judges the result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ferry._messages import foreign_errors, native_message
from ferry.errors import UnsupportedModelError, UserError

_COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass(frozen=True)
class PassResult:
    """The file a pass wrote, the step as the report names it, and the nodes it left in float."""

    path: Path
    step: str
    kept_float: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running(tool: str, hint: str) -> Iterator[None]:
    """Run a third-party optimizer or quantizer: whatever it raises on a model it cannot take
    becomes one line naming the tool and what to try (ferry's errors and the operating system's
    pass unchanged).

    Raises:
        UnsupportedModelError: the tool failed, with the first line of its message.
    """
    with foreign_errors(lambda exc: _failed(tool, hint, exc)):
        yield


def _failed(tool: str, hint: str, exc: BaseException) -> UnsupportedModelError:
    return UnsupportedModelError(f"{tool} failed on this model ({native_message(exc)}); {hint}")


def nodes_to_exclude(proto: onnx.ModelProto, keep: Sequence[str]) -> list[str]:
    """Node names to leave in float: names as given, ``last`` for the last compute op.

    Raises:
        UserError: a name that is not in the graph.
    """
    names = {n.name for n in proto.graph.node}
    out: list[str] = []
    for item in keep:
        if item == "last":
            compute = [n.name for n in proto.graph.node if n.op_type in _COMPUTE_OPS]
            if compute:
                out.append(compute[-1])
        elif item not in names:
            raise UserError(f"--keep-float names node {item!r}, which is not in the graph")
        else:
            out.append(item)
    return out
