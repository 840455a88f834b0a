"""One exception hierarchy for ferry; the CLI maps each class to an exit code."""

from __future__ import annotations

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
    """An exception as ``Type: first non-empty line`` for a one-line error, without colour codes.

    Args:
        root: follow ``__cause__`` to the innermost exception (torch.onnx wraps the real failure,
            e.g. a data-dependent branch, in a generic "Failed to export").
        limit: longest message kept, in characters.
    """
    while root and exc.__cause__ is not None:
        exc = exc.__cause__
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return f"{type(exc).__name__}: {' '.join(line.split())[:limit]}"
    return type(exc).__name__
