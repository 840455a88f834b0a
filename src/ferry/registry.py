"""One name -> item table for the things ferry registers: backends, zoo models, package targets."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from ferry.errors import InternalError, UserError


class _Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


class Registry(Generic[T]):
    """Items by their ``name``; a duplicate is a bug, an unknown name lists the known ones.

    Args:
        kind: what the items are, for messages ("backend" gives "unknown backend 'x'; known: ...").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, item: T) -> T:
        if item.name in self._items:
            raise InternalError(f"{self.kind} {item.name!r} is registered twice")
        self._items[item.name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter([self._items[n] for n in self.names()])

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


def importable(module: str) -> bool:
    """Whether an optional package can be imported (without importing it)."""
    if module in sys.modules and sys.modules[module] is None:
        return False  # blocked on purpose (tests simulate a missing runtime this way)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_version(module: str, distribution: str) -> str | None:
    """Version of an optional runtime, or ``None`` when its module cannot be imported."""
    if not importable(module):
        return None
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
