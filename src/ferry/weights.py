"""Safe state-dict loading: safetensors, or ``torch.load(weights_only=True)``; never a pickle with code."""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ferry._inputs import input_file
from ferry._messages import ANSI, native_message
from ferry.errors import UserError


def torch_load(path: str | os.PathLike[str], what: str = "weights file") -> Any:
    """``torch.load(weights_only=True)`` of a file the user gave, with one-line errors.

    Args:
        what: what the file is, for the messages (``weights file``, ``checkpoint``).

    Raises:
        UserError: a missing, empty or non-regular file, a pickle that holds code (refused, never
            run), or a file torch cannot read.
    """
    path = input_file(path, what, hint="give a file saved with torch.save or safetensors")
    try:
        with warnings.catch_warnings():
            # torch warns, at length, about pickle protocols of files it then refuses or reads
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"refused to load {path}: it holds Python objects beyond tensors ({_unsafe_part(exc)}), which could run"
            " code; save a plain state_dict, or convert it to .safetensors"
        ) from exc
    except Exception as exc:  # torch reports a damaged file as RuntimeError, EOFError, KeyError, ...
        detail = native_message(exc, limit=400).split(". ")[0].rstrip(".")
        raise UserError(
            f"cannot read {what} {path}: it is damaged or not a torch file ({detail}); save it again with torch.save"
        ) from exc


def _unsafe_part(exc: BaseException) -> str:
    """From torch's refusal (several paragraphs, advising ``weights_only=False``), the line that
    names what the file holds."""
    lines = [" ".join(line.split()) for line in ANSI.sub("", str(exc)).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "global" in line]
    return (named[0] if named else "an object torch does not load without running code")[:200]


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or ``.pt/.pth`` (weights only).

    Raises:
        UserError: for a missing or empty file, an unknown extension, a pickle that holds code,
            or a file that does not hold a mapping of names to tensors.
    """
    path = input_file(path, "weights file", hint="give a .safetensors, .pt or .pth file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"cannot read safetensors file {path}: {native_message(exc)}; save it again") from exc
    if suffix in (".pt", ".pth", ".bin"):
        state = torch_load(path)
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UserError(f"{path} does not hold a state dict (a mapping of names to tensors)")
        return dict(state)
    raise UserError(f"unsupported weights format {suffix!r} for {path}; use .safetensors, .pt or .pth")


def load_state_dict(module: nn.Module, path: str | os.PathLike[str], *, strict: bool = True) -> None:
    """Load a state dict from ``.safetensors`` or ``.pt/.pth`` (weights only) into ``module``.

    Raises:
        UserError: for a missing or empty file, an unknown extension, a pickle that holds code,
            or keys/shapes that do not match the model.
    """
    fit(module, read_state_dict(path), path, strict=strict)


def fit(module: nn.Module, state: Mapping[str, Any], path: str | os.PathLike[str], *, strict: bool = True) -> None:
    """``module.load_state_dict(state)`` with a one-line error naming the file.

    Raises:
        UserError: keys or shapes that do not match the model.
    """
    try:
        module.load_state_dict(dict(state), strict=strict)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        detail = " ".join(ANSI.sub("", str(exc)).split())
        raise UserError(f"weights in {path} do not fit the model: {detail[:400]}") from exc
