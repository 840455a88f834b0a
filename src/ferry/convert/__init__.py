"""Converters: a model in one runtime's format from another (``<target>_from_<source>``).

A backend opens what a converter makes; a package target writes it with a README and a
manifest. Converters never import backends or targets.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["quietly"]


def quietly(fn: Callable[[], object]) -> None:
    """Run a converter with its prints and INFO logs swallowed (their output is not ferry's)."""
    import contextlib
    import io
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            fn()
    finally:
        logging.disable(previous)
