"""Third-party messages made fit for a one-line error: the first line, without terminal colour
codes, ONNX Runtime's status prefix, the temporary file a tool loaded, or C++ source locations."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

from ferry.errors import FerryError, first_line

#: terminal escape codes (colours, cursor moves) that torch and others put in messages
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

_NOISE = (
    ANSI,
    re.compile(r"\[ONNXRuntimeError\] : \d+ : \w+ : "),
    re.compile(r"Load model from \S+ failed: ?"),
    # "/onnxruntime_src/.../model_load_utils.h:46 void onnxruntime::...::Validate(const ...&, int) "
    re.compile(r"\S+\.(?:h|hpp|cc|cpp):\d+:? (?:[^()]*\([^)]*\)\s*)?"),
)


def native_message(exc: BaseException, *, limit: int = 300) -> str:
    """``Type: first line`` of an exception (the innermost cause's) without the noise above."""
    text = first_line(exc, root=True, limit=4000)
    for noise in _NOISE:
        text = noise.sub("", text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@contextlib.contextmanager
def foreign_errors(wrap: Callable[[BaseException], FerryError]) -> Iterator[None]:
    """Run a third-party tool (a converter, an optimizer): whatever it raises on a model it cannot
    take becomes ``wrap(exc)``; ferry's own errors and the operating system's (an ``OSError`` with
    an errno: a full disk, a permission) pass unchanged."""
    try:
        yield
    except FerryError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise wrap(exc) from exc
    except Exception as exc:  # the tools raise their own (often C++) error types, and plain asserts
        raise wrap(exc) from exc
