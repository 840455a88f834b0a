"""One exception hierarchy for ferry; the CLI maps each class to an exit code."""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error ferry raises on purpose."""

    exit_code = 1


class UserError(FerryError):
    """Bad input: a missing file, a wrong shape, an unknown name. Exit code 1."""

    exit_code = 1


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
