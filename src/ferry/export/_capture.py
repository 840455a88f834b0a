"""What the exporters print, warn and log while they run: kept off the terminal, kept whole for a
log file, and read for the one line that says why an export failed or why a dim came out static.

torch writes through three channels: Python warnings, its own loggers (bound to the process's
stderr when torch was imported) and C++ code printing straight to file descriptors 1 and 2 (the
TorchScript exporter dumps its whole IR graph there on an error). Only redirecting the file
descriptors catches the last two, so that is what :func:`capture` does.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ferry.errors import first_line

#: the logger torch.export's shape environment reports symbols, guards and specializations to
SHAPES_LOGGER = "torch.fx.experimental.symbolic_shapes"
#: longest exporter output kept in memory (the head; the rest is counted)
_KEEP_BYTES = 4 * 2**20

_CREATE_SYMBOL = re.compile(r"create_symbol (\w+) = \S+ for (\S+)")
_GUARD = re.compile(r"^(?:eval|runtime_assert) (?!\[guard suppressed\])(.+?) \[guard added\]")
_REPLACEMENT = re.compile(r"^set_replacement (\w+) = (-?\d+)\b")
_SAME_NAME = re.compile(
    r"axis name: (\w+) will not be used, since it shares the same shape constraints with another axis: \1\."
)
_MESSAGE_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(\S[^\n]*)')
_TORCH_ADVICE = re.compile(
    r"\s*(For more information, run with TORCH_LOGS=\S+|\(Size-like symbols: none\)|\(unhinted: [^()]*(\([^()]*\))?[^()]*\))\.?"
)


def _dir_of(module: str) -> str | None:
    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None)
    return os.path.dirname(os.path.abspath(file)) + os.sep if file else None


@dataclass(frozen=True)
class _Libraries:
    """Folders whose frames are never the model's: Python itself, torch and the ONNX tooling;
    and ferry's, where the walk from the failing call outwards stops."""

    stdlib: str
    libraries: tuple[str, ...]
    ferry: str | None

    @classmethod
    def here(cls) -> _Libraries:
        stdlib = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
        libraries = tuple(d for m in ("torch", "onnxscript", "onnx") if (d := _dir_of(m)))
        return cls(stdlib, libraries, _dir_of("ferry"))

    def is_ferry(self, path: str) -> bool:
        return self.ferry is not None and os.path.abspath(path).startswith(self.ferry)

    def is_library(self, path: str) -> bool:
        if path.startswith("<"):  # generated code: <string>, <eval_with_key>, <frozen ...>
            return True
        path = os.path.abspath(path)
        if path.startswith(self.stdlib) and "site-packages" not in path[len(self.stdlib) :]:
            return True
        return path.startswith(self.libraries)


def short_path(path: str) -> str:
    """A frame's file as a reader finds it: from its package, or relative to the working folder."""
    _, sep, tail = path.rpartition("site-packages" + os.sep)
    if sep:
        return tail
    with contextlib.suppress(ValueError):
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            return rel
    return path


@dataclass(frozen=True)
class Frame:
    """A place in the model's source."""

    path: str
    line: int
    function: str
    code: str

    def __str__(self) -> str:
        where = f"{short_path(self.path)}:{self.line} in {self.function}"
        return f"{where}: `{self.code}`" if self.code else where


def _frame(path: str, line: int, function: str) -> Frame:
    import linecache

    return Frame(path, line, function, linecache.getline(path, line).strip())


def _innermost_user_frame(frames: list[tuple[str, int, str]], libs: _Libraries) -> Frame | None:
    """The innermost frame of the model's code among ``frames`` (outermost first), looking only
    below ferry's own call into the exporter."""
    inner = list(reversed(frames))
    while inner and libs.is_ferry(inner[0][0]):  # ferry's own logging handler, innermost
        inner.pop(0)
    for path, line, function in inner:
        if libs.is_ferry(path):
            return None  # back at ferry's call into the exporter: no model code on the way
        if not libs.is_library(path):
            return _frame(path, line, function)
    return None


def _current_stack() -> list[tuple[str, int, str]]:
    return [(f.f_code.co_filename, lineno, f.f_code.co_name) for f, lineno in traceback.walk_stack(None)][::-1]


def _traceback_frames(exc: BaseException) -> list[tuple[str, int, str]]:
    return [(f.f_code.co_filename, lineno, f.f_code.co_name) for f, lineno in traceback.walk_tb(exc.__traceback__)]


def user_frame(exc: BaseException) -> Frame | None:
    """Where in the model's code ``exc`` (or an exception it was raised from) came from.

    Non-strict torch.export runs the model's Python, so its frames are in the traceback; dynamo
    (strict mode) quotes them in the message ("from user code: File ...").
    """
    libs = _Libraries.here()
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for item in reversed(chain):  # the root first: the wrappers' frames are torch.onnx's
        found = _innermost_user_frame(_traceback_frames(item), libs)
        if found is not None:
            return found
    for item in reversed(chain):
        quoted = [(p, int(n), fn) for p, n, fn, _ in _MESSAGE_FRAME.findall(str(item))]
        user = [q for q in quoted if not libs.is_library(q[0])]
        if user:
            return _frame(*user[-1])
    return None


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def headline(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` in one line, without torch's run-with-TORCH_LOGS advice; a constraint
    violation ("Constraints violated (seq)!") keeps its first bullet, which says what happened."""
    root = _root(exc)
    text = _TORCH_ADVICE.sub("", first_line(root, limit=limit))
    bullets = [ln.strip()[2:] for ln in str(root).splitlines() if ln.strip().startswith("- ")]
    if bullets and text.rstrip().endswith("!"):
        text = f"{text.rstrip()} {bullets[0]}"
    return " ".join(text.split())[:limit]


def reason(exc: BaseException) -> str:
    """Why an exporter failed, in one line: what went wrong, and where in the model's code."""
    if isinstance(exc, Specialized):
        return str(exc)
    frame = user_frame(exc)
    return f"{headline(exc).rstrip('.')} at {frame}" if frame else headline(exc)


class Specialized(Exception):
    """An export whose file has a static size where a dynamic dim was asked for."""


@dataclass(frozen=True)
class Guard:
    """A condition torch.export assumed about the shapes, and where the model's code made it."""

    expr: str
    frame: Frame | None
    #: the input sizes the guard's symbols stood for when it was added (``L['x'].size()[0]``)
    sources: tuple[str, ...] = ()


@dataclass
class Capture:
    """What one export run printed, warned and logged.

    Attributes:
        verbose: nothing is hidden; the exporters print to the terminal as they like.
        warnings: distinct warnings (first lines), torch's deprecation notices left out.
        guards: the shape guards of the current attempt, in order.
        symbols: the shape symbols created so far -> the input size each stands for
            (``s77`` -> ``L['x'].size()[0]``); torch reuses names from one trace to the next.
        log: the whole story: attempts, log records, warnings, tracebacks.
        output: what went to stdout/stderr (Python and C++).
    """

    verbose: bool = False
    warnings: list[str] = field(default_factory=list)
    guards: list[Guard] = field(default_factory=list)
    symbols: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def begin(self, label: str) -> None:
        """Start an attempt: its guards and symbols replace the last one's."""
        self.guards, self.symbols = [], {}
        self.log.append(f"== {label}")

    def failed(self, label: str, exc: BaseException) -> None:
        self.log.append(f"== {label} failed:\n" + "".join(traceback.format_exception(exc)))

    def why_static(self, input_name: str, position: int, axis: int) -> Guard | None:
        """The first guard on axis ``axis`` of an input (by name or position), one pinning it to
        a value (``Eq(...)``) first."""
        pattern = re.compile(rf"(\['{re.escape(input_name)}'\]|\[{position}\])\.size\(\)\[{axis}\]$")
        mentions = [g for g in self.guards if any(pattern.search(source) for source in g.sources)]
        pinned = [g for g in mentions if g.expr.startswith("Eq(")]
        chosen = pinned or mentions
        return chosen[0] if chosen else None

    def text(self) -> str:
        """Everything, for a log file."""
        parts = [*self.log, "== exporter output (stdout and stderr)", *self.output]
        return "\n".join(p.rstrip("\n") for p in parts) + "\n"


class _ShapeRecorder(logging.Handler):
    """Records torch.export's symbols and guards, each with the model's frame that made it (the
    handler runs inside the call that adds the guard, so the model's code is on the stack)."""

    def __init__(self, cap: Capture) -> None:
        super().__init__(logging.INFO)
        self.cap = cap
        self.libs = _Libraries.here()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if not self.cap.verbose:
                self.cap.log.append(f"{record.levelname} {record.name}: {msg}")
            if m := _CREATE_SYMBOL.match(msg):
                self.cap.symbols[m.group(1)] = m.group(2)
                return
            if m := _REPLACEMENT.match(msg):
                expr = f"Eq({m.group(1)}, {m.group(2)})"
            elif m := _GUARD.match(msg):
                expr = m.group(1)
            else:
                return
            sources = tuple(src for sym, src in self.cap.symbols.items() if re.search(rf"\b{sym}\b", expr))
            frame = _innermost_user_frame(_current_stack(), self.libs)
            self.cap.guards.append(Guard(expr, frame, sources))
        except Exception:  # a logging handler must never break the export it watches
            self.handleError(record)


@contextlib.contextmanager
def _recording_shapes(cap: Capture) -> Iterator[None]:
    logger = logging.getLogger(SHAPES_LOGGER)
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    if not cap.verbose:
        # torch's own handlers would print every INFO record; a quiet run keeps them in the log.
        for h in handlers:
            logger.removeHandler(h)
        logger.propagate = False
    handler = _ShapeRecorder(cap)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        for h in handlers if not cap.verbose else ():
            logger.addHandler(h)
        logger.setLevel(level)
        logger.propagate = propagate


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    with contextlib.suppress(Exception):  # C stdio buffers (printf) of the exporters' C++ code
        import ctypes

        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _descriptors_to(sink: list[str]) -> Iterator[None]:
    """Point file descriptors 1 and 2 at a temporary file while the block runs."""
    _flush_all()
    saved: list[int] = []
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no such descriptors (a GUI interpreter): Python-level capture only
        for fd in saved:
            os.close(fd)
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            size = tmp.tell()
            tmp.seek(0)
            text = tmp.read(_KEEP_BYTES).decode("utf-8", "replace")
            if size > _KEEP_BYTES:
                text += f"\n[{size - _KEEP_BYTES} more bytes left out]"
            sink.append(text)


def _keep_warnings(cap: Capture, records: list[warnings.WarningMessage]) -> None:
    for rec in records:
        cap.log.append(f"warning {rec.category.__name__} ({rec.filename}:{rec.lineno}): {rec.message}")
        msg = str(rec.message).split("\n")[0]
        # Deprecation notices from torch's own internals say nothing about the user's model, nor
        # does torch.onnx noting that a dim shared by several inputs keeps its one name.
        if (
            issubclass(rec.category, (DeprecationWarning, FutureWarning))
            or msg in cap.warnings
            or _SAME_NAME.search(msg)
        ):
            continue
        cap.warnings.append(msg)
        if cap.verbose:  # (warnings.showwarning is the recorder while the warnings are caught)
            sys.stderr.write(warnings.formatwarning(rec.message, rec.category, rec.filename, rec.lineno))


@contextlib.contextmanager
def capture(*, verbose: bool = False) -> Iterator[Capture]:
    """Run the exporters with their output, warnings and logs captured in a :class:`Capture`.

    Args:
        verbose: let everything through to the terminal too (``--debug``); warnings and shape
            guards are recorded either way.
    """
    cap = Capture(verbose=verbose)
    python_out = io.StringIO()
    with contextlib.ExitStack() as stack:
        records = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        stack.enter_context(_recording_shapes(cap))
        if not verbose:
            stack.enter_context(_descriptors_to(cap.output))
            stack.enter_context(contextlib.redirect_stdout(python_out))
            stack.enter_context(contextlib.redirect_stderr(python_out))
        try:
            yield cap
        finally:
            _keep_warnings(cap, records)
    if python_out.getvalue():
        cap.output.insert(0, python_out.getvalue())


def write_log(cap: Capture, path: str | os.PathLike[str]) -> Path:
    """Write everything the run captured to ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cap.text(), encoding="utf-8")
    return out
