"""The Open Inference Protocol ("v2", KServe and Triton) over REST: tensors in and out of JSON and
the binary tensor data extension, and its error replies.

A request body is JSON, or JSON followed by raw tensor bytes when the header
``Inference-Header-Content-Length`` says where the JSON ends (what ``tritonclient.http`` sends by
default); an input with ``parameters.binary_data_size`` takes its bytes from there, in order.
Outputs go back as JSON lists, or as raw bytes after the JSON when the request asks for
``binary_data`` on an output or ``binary_data_output`` for all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ferry.specs import TensorInfo

#: protocol datatype <-> numpy dtype name (BYTES and BF16 have no plain numpy dtype: refused)
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
_FROM_NUMPY = {v: k for k, v in DATATYPES.items()}
HEADER_LENGTH = "Inference-Header-Content-Length"


class ProtocolError(Exception):
    """A request the server answers with the protocol's error JSON, ``{"error": message}``.

    Attributes:
        status: the HTTP status (400 bad request, 404 unknown model, 413 too large, 503 overloaded,
            504 timed out).
    """

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def datatype(dtype: str) -> str:
    """The protocol's name of a numpy dtype (``float32`` -> ``FP32``)."""
    try:
        return _FROM_NUMPY[np.dtype(dtype).name]
    except KeyError:
        raise ProtocolError(400, f"dtype {dtype} has no Open Inference Protocol datatype here") from None


def wire_shape(shape: Sequence[int | str | None]) -> list[int]:
    """A declared shape for metadata: dynamic dims as -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


@dataclass
class InferRequest:
    """A decoded infer request: named inputs, the outputs asked for and how to send them."""

    inputs: dict[str, np.ndarray]
    outputs: list[str]
    binary: dict[str, bool]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _json_header(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        head, rest = body, b""
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise ProtocolError(400, f"{HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 <= size <= len(body):
            raise ProtocolError(400, f"{HEADER_LENGTH} {size} is beyond the body's {len(body)} bytes")
        head, rest = body[:size], body[size:]
    try:
        request = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(400, f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ProtocolError(400, 'the request must be a JSON object with an "inputs" list')
    return request, rest


def _tensor(entry: Any, binary: memoryview, offset: int, expected: Mapping[str, TensorInfo]) -> tuple[np.ndarray, int]:
    """One input of the request as an array; returns it and the offset of the next binary bytes."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProtocolError(400, 'every input needs a "name", "shape", "datatype" and data')
    name = entry["name"]
    shape, dt = entry.get("shape"), entry.get("datatype")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(400, f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if name not in expected:
        raise ProtocolError(400, f"unknown input {name!r}; the model takes {', '.join(expected)}")
    want = expected[name].dtype
    if dt != _FROM_NUMPY.get(want):
        raise ProtocolError(400, f"input {name!r} has datatype {dt}, the model takes {_FROM_NUMPY.get(want, want)}")
    dtype = np.dtype(want)
    count = int(np.prod(shape, dtype=np.int64))
    size = (entry.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize or offset + size > len(binary):
            raise ProtocolError(
                400, f"input {name!r}: binary_data_size {size} does not hold shape {shape} of {dt} in the body"
            )
        # a copy: the body's bytes are read-only, and some runtimes (PyTorch) want writable arrays
        return np.frombuffer(binary[offset : offset + size], dtype=dtype).reshape(shape).copy(), offset + size
    if "data" not in entry:
        raise ProtocolError(400, f'input {name!r} has neither "data" nor parameters.binary_data_size')
    try:
        arr = np.asarray(entry["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(400, f"input {name!r}: data is not {dt}: {exc}") from None
    if arr.size != count:
        raise ProtocolError(400, f"input {name!r}: {arr.size} values for shape {shape} ({count} values)")
    return arr.reshape(shape), offset


def decode(
    body: bytes, header_length: str | None, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]
) -> InferRequest:
    """Decode an infer request for a model with these inputs and outputs.

    Raises:
        ProtocolError: 400 for malformed JSON, unknown names, wrong datatypes and data that does
            not fill its shape. Shapes are checked by the session.
    """
    request, rest = _json_header(body, header_length)
    binary, offset = memoryview(rest), 0
    expected = {i.name: i for i in inputs}
    feeds: dict[str, np.ndarray] = {}
    for entry in request["inputs"]:
        arr, offset = _tensor(entry, binary, offset, expected)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        feeds[entry["name"]] = arr
    if offset != len(binary):
        raise ProtocolError(400, f"{len(binary) - offset} bytes after the tensors that no input claims")
    params = request.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError(400, '"parameters" must be an object')
    known = [o.name for o in outputs]
    asked = request.get("outputs")
    if asked is None:
        names, binary_out = known, dict.fromkeys(known, bool(params.get("binary_data_output", False)))
    else:
        if not isinstance(asked, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked
        ):
            raise ProtocolError(400, '"outputs" must be a list of objects with a "name"')
        names = [o["name"] for o in asked]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ProtocolError(400, f"unknown output(s) {', '.join(unknown)}; the model has {', '.join(known)}")
        default = bool(params.get("binary_data_output", False))
        binary_out = {o["name"]: bool((o.get("parameters") or {}).get("binary_data", default)) for o in asked}
    rid = request.get("id")
    return InferRequest(feeds, names, binary_out, str(rid) if rid is not None else None, params)


def encode(
    model: str, version: str, request: InferRequest, results: Mapping[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """The infer response body, and the JSON's length when binary tensors follow it."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in request.outputs:
        arr = np.ascontiguousarray(results[name])
        entry: dict[str, Any] = {"name": name, "datatype": datatype(arr.dtype.name), "shape": list(arr.shape)}
        if request.binary.get(name):
            raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = arr.ravel().tolist()
        entries.append(entry)
    response: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": entries}
    if request.id is not None:
        response["id"] = request.id
    head = json.dumps(response, separators=(",", ":")).encode()
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
