"""Input specifications: shapes, dynamic dims, dtypes and value ranges of a model's inputs.

A spec string is what users type after ``--input``::

    1,3,224,224                  static shape, float32
    1x3x224x224                  the same, shorthand
    batch=1,1,height=224,width=224   dims named ``batch``, ``height``, ``width`` are dynamic
    2,12:int64:0:100             int64 values drawn from [0, 100)
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ferry.errors import UserError

FLOAT_DTYPES = ("float32", "float16", "float64", "bfloat16")
INT_DTYPES = ("int64", "int32", "int16", "int8", "uint8")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, "bool")

_DIM_RE = re.compile(r"^(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)=)?(?P<size>\d+)$")
_INT_RE = re.compile(r"^[+-]?\d+$")

#: most dimensions an input may have (ONNX Runtime's own limit is about this)
MAX_RANK = 64
#: largest sample of one input ferry allocates, in bytes
MAX_INPUT_BYTES = 4 * 2**30
#: elements drawn at a time by :meth:`InputSpec.sample` (in float64 or int64, then stored)
_SAMPLE_BLOCK = 1 << 16
#: bytes per element of the array a sample of each dtype is drawn as (bfloat16 samples are float32)
_ITEMSIZE = {"float32": 4, "float16": 2, "float64": 8, "bfloat16": 4, "int64": 8, "int32": 4, "int16": 2}
_ITEMSIZE |= {"int8": 1, "uint8": 1, "bool": 1}


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.3g} PiB"


def check_size(shape: Sequence[int], dtype: str, text: str) -> None:
    """Refuse, before anything is allocated, a sample of ``shape`` larger than :data:`MAX_INPUT_BYTES`.

    Raises:
        UserError: naming the size and the limit.
    """
    elements = math.prod(shape)
    nbytes = elements * _ITEMSIZE.get(dtype, 8)
    if nbytes > MAX_INPUT_BYTES:
        raise UserError(
            f"input {text!r} is {elements:.3g} elements ({_human_bytes(nbytes)} as {dtype}), over ferry's limit of"
            f" {_human_bytes(MAX_INPUT_BYTES)} per input; give smaller example sizes (named dims stay dynamic)"
        )


@dataclass(frozen=True)
class Dim:
    """One dimension: an example size, and a name when the dimension is dynamic."""

    size: int
    name: str | None = None

    @property
    def dynamic(self) -> bool:
        return self.name is not None

    def __str__(self) -> str:
        return f"{self.name}={self.size}" if self.name else str(self.size)


@dataclass(frozen=True)
class TensorInfo:
    """Name, dtype and shape of a graph's or session's input/output; ``None`` or a string marks a
    dynamic dim."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class InputSpec:
    """Shape, dtype and sample range of one model input.

    Attributes:
        dims: the dimensions; named ones are exported as dynamic axes.
        dtype: a numpy dtype name (``float32``, ``int64``, ...).
        low: lower bound of generated integer samples (inclusive).
        high: upper bound of generated integer samples (exclusive).
        name: the input's name in the exported graph; filled from ``forward``'s signature
            when empty.
    """

    dims: tuple[Dim, ...]
    dtype: str = "float32"
    low: int | None = None
    high: int | None = None
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        """The example shape."""
        return tuple(d.size for d in self.dims)

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Axis index -> dynamic dim name."""
        return {i: d.name for i, d in enumerate(self.dims) if d.name}

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def with_name(self, name: str) -> InputSpec:
        return replace(self, name=name)

    def with_sizes(self, sizes: Mapping[str, int]) -> InputSpec:
        """A copy whose dynamic dims take the sizes given by name (others keep theirs)."""
        return replace(self, dims=tuple(Dim(sizes.get(d.name, d.size), d.name) if d.name else d for d in self.dims))

    def __str__(self) -> str:
        text = ",".join(str(d) for d in self.dims)
        if self.dtype != "float32" or self.low is not None:
            text += f":{self.dtype}"
        if self.low is not None and self.high is not None:
            text += f":{self.low}:{self.high}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": [d.size for d in self.dims],
            "dynamic": {str(i): n for i, n in self.dynamic_axes.items()},
            "dtype": self.dtype,
            "range": [self.low, self.high] if self.low is not None else None,
            "spec": str(self),
        }

    def sample(self, rng: np.random.Generator, *, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
        """Draw one random array: normals (times ``scale`` plus ``offset``) for floats,
        uniform integers in [low, high) for ints.

        The values are drawn in blocks straight into an array of the input's dtype (float32 for
        bfloat16): a sample takes the memory of the array it is, not of a float64 copy, and the
        values are those one draw of the whole array gives.

        Raises:
            UserError: the array would be larger than :data:`MAX_INPUT_BYTES`.
        """
        check_size(self.shape, self.dtype, str(self))
        out = np.empty(self.shape, dtype=np.float32 if self.dtype == "bfloat16" else np.dtype(self.dtype))
        flat = out.reshape(-1)
        low = 0 if self.low is None else self.low
        high = 2 if self.high is None or self.dtype == "bool" else self.high
        for start in range(0, flat.size, _SAMPLE_BLOCK):
            n = min(_SAMPLE_BLOCK, flat.size - start)
            if self.is_float:
                flat[start : start + n] = rng.standard_normal(n) * scale + offset
            else:
                flat[start : start + n] = rng.integers(low, high, n)
        return out


def parse_input_spec(text: str) -> InputSpec:
    """Parse one ``--input`` spec string.

    Raises:
        UserError: with the accepted grammar when the string is malformed.
    """
    help_text = "expected e.g. 1,3,224,224 or batch=1,3,height=224,width=224 or 2,12:int64:0:100"
    raw = text.strip()
    if not raw:
        raise UserError(f"empty input spec; {help_text}")
    parts = raw.split(":")
    dims_text, rest = parts[0], parts[1:]
    if "x" in dims_text and "," not in dims_text and "=" not in dims_text:
        dims_text = dims_text.replace("x", ",")
    dims: list[Dim] = []
    seen: set[str] = set()
    tokens = dims_text.split(",")
    if len(tokens) > MAX_RANK:
        raise UserError(f"input spec {text[:60]!r}... has {len(tokens)} dimensions; at most {MAX_RANK} are supported")
    for token in tokens:
        m = _DIM_RE.match(token.strip())
        if not m:
            raise UserError(f"bad dimension {token[:40]!r} in input spec {text[:100]!r}; {help_text}")
        if len(m.group("size")) > 18:
            raise UserError(f"dimension {token[:40]!r} in input spec {text[:100]!r} is too large")
        size = int(m.group("size"))
        name = m.group("name")
        if size < 1:
            raise UserError(f"dimension {token!r} in input spec {text!r} must be at least 1")
        if name:
            if name in seen:
                raise UserError(f"dimension name {name!r} appears twice in input spec {text!r}")
            seen.add(name)
        dims.append(Dim(size, name))
    dtype = "float32"
    low: int | None = None
    high: int | None = None
    if rest:
        dtype = rest[0].strip() or "float32"
        if dtype not in DTYPES:
            raise UserError(f"unknown dtype {dtype!r} in input spec {text!r}; known: {', '.join(DTYPES)}")
        bounds = rest[1:]
        if bounds:
            if dtype not in INT_DTYPES or len(bounds) != 2:
                raise UserError(f"a value range low:high is only allowed after an integer dtype, got {text!r}")
            low, high = _int_range(bounds, dtype, text)
    check_size([d.size for d in dims], dtype, text)
    return InputSpec(tuple(dims), dtype, low, high)


def _int_range(bounds: Sequence[str], dtype: str, text: str) -> tuple[int, int]:
    """``low:high`` of an integer input: non-empty, and every value representable in ``dtype``."""
    if not all(_INT_RE.match(b.strip()) for b in bounds):
        raise UserError(f"value range in {text!r} must be two integers low:high")
    info = np.iinfo(dtype)
    fits = all(len(b.strip().lstrip("+-")) <= 20 for b in bounds)
    low, high = (int(bounds[0]), int(bounds[1])) if fits else (info.min - 1, 0)
    if fits and high <= low:
        raise UserError(f"value range in {text!r} is empty: high must be greater than low")
    if low < info.min or high - 1 > info.max:
        raise UserError(
            f"value range in {text[:100]!r} does not fit {dtype} ({info.min} to {info.max});"
            f" give low >= {info.min} and high <= {info.max + 1} (high is exclusive), or a wider dtype"
        )
    return low, high


def parse_input_specs(texts: Sequence[str]) -> list[InputSpec]:
    """Parse several ``--input`` spec strings, checking that dynamic dim names agree."""
    specs = [parse_input_spec(t) for t in texts]
    sizes: dict[str, int] = {}
    for spec in specs:
        for d in spec.dims:
            if d.name is None:
                continue
            if d.name in sizes and sizes[d.name] != d.size:
                raise UserError(
                    f"dynamic dim {d.name!r} has example size {sizes[d.name]} in one input and {d.size} in another;"
                    " give it the same size everywhere"
                )
            sizes[d.name] = d.size
    return specs


def parse_literal(text: str) -> Any:
    """Parse a ``--arg`` value as a Python literal, falling back to the plain string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_kwargs(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` pairs (values as Python literals) into a dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UserError(f"bad --arg {pair!r}; expected key=value, e.g. --arg upscale_factor=3")
        out[key] = parse_literal(value)
    return out
