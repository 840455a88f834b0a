"""Third-party messages made fit for a one-line error: the first line, without terminal colour
codes, ONNX Runtime's status prefix, the temporary file a tool loaded, or C++ source locations."""

from __future__ import annotations

import re

from ferry.errors import first_line

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
