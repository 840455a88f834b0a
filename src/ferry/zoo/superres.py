"""Deprecated name of :mod:`ferry.zoo.espcn`, kept so that model sources written before the
rename (``ferry.zoo.superres:SuperResolutionNet``) still load."""

from __future__ import annotations

import warnings

from ferry.zoo.espcn import SuperResolutionNet, task

warnings.warn(
    "ferry.zoo.superres is now ferry.zoo.espcn; use ferry.zoo.espcn:SuperResolutionNet",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["SuperResolutionNet", "task"]
