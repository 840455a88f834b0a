"""The ``ferry`` command line: one module per command (``ferry.cli.<command>``), each a thin layer
that parses its flags, calls one library function and prints the result; ``app`` wires them, and
``_options``/``_render`` hold what several commands share."""

from __future__ import annotations

from ferry.cli.app import app, main, run

__all__ = ["app", "main", "run"]
