"""One exception hierarchy for ferry; the CLI maps each class to an exit code."""

from __future__ import annotations

import errno
import os
import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FerryError(Exception):
    """Base of every error ferry raises on purpose."""

    exit_code = 1


class UserError(FerryError):
    """Bad input: a missing file, a wrong shape, an unknown name. Exit code 1."""

    exit_code = 1


class UnsupportedModelError(UserError):
    """A runtime or its converter cannot take this model (an operator, a dtype, a data-dependent
    branch): a fact about the pair, not a crash. Under ``--backends all`` it is reported as a
    refusal with its reason. Exit code 1 when that runtime was asked for by name."""


class MissingDependencyError(UserError):
    """An optional runtime or tool is not installed."""


class WriteError(UserError):
    """An output could not be written: permissions, a full disk, a read-only file system, a name
    too long. Exit code 1; a cache write that fails this way is a warning, not an error."""


class FerryWarning(UserWarning):
    """Something the user should know that did not stop the command (the CLI prints one line)."""


class VerificationError(FerryError):
    """A result was computed but failed a parity or quality threshold. Exit code 2."""

    exit_code = 2


class InternalError(FerryError):
    """A bug in ferry itself. Exit code 3."""

    exit_code = 3


EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_VERIFICATION_FAILED = 2
EXIT_INTERNAL_ERROR = 3


def first_line(exc: BaseException, *, root: bool = False, limit: int = 300) -> str:
    """An exception as ``Type: first non-empty line`` for a one-line error, without colour codes;
    ferry's own errors (:class:`FerryError`, whose messages are written for the user) without
    their type.

    Args:
        root: follow ``__cause__`` to the innermost exception (torch.onnx wraps the real failure,
            e.g. a data-dependent branch, in a generic "Failed to export").
        limit: longest message kept, in characters.
    """
    while root and exc.__cause__ is not None:
        exc = exc.__cause__
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            text = " ".join(line.split())[:limit]
            return text if isinstance(exc, FerryError) else f"{type(exc).__name__}: {text}"
    return type(exc).__name__


_OS_HINTS = {
    errno.EACCES: "check its permissions or choose another location",
    errno.EPERM: "check its permissions or choose another location",
    errno.ENOSPC: "free some disk space or write somewhere else",
    errno.EDQUOT: "free some space in your quota or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENAMETOOLONG: "use a shorter file name",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.EFBIG: "the file is too large for this file system: write somewhere else",
}


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | None = None, action: str = "") -> str:
    """An operating-system error as one line naming the path, the cause and what to do.

    Args:
        path: the file the user named (a temporary name or a parent folder in ``exc.filename`` is
            then shown in brackets, after the cause).
        action: ``write`` or ``read``: the message starts "cannot write PATH".
    """
    cause = exc.strerror or first_line(exc)
    shown = os.fsdecode(path) if path is not None else None
    other = os.fsdecode(exc.filename) if exc.filename is not None else None
    if shown is None:
        shown, other = other, None
    if other is not None and (other == shown or os.path.basename(other).startswith(".ferry-tmp-")):
        other = None
    head = f"cannot {action} {shown}" if action and shown else (shown or "")
    text = f"{head}: {cause}" if head else cause
    if other is not None:
        text += f" ({other})"
    hint = _OS_HINTS.get(exc.errno or -1)
    return f"{text}; {hint}" if hint else text
