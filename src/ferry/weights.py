"""Safe state-dict loading: safetensors, or ``torch.load(weights_only=True)``; never a pickle with code."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ferry.errors import UserError


def load_state_dict(module: nn.Module, path: str | os.PathLike[str], *, strict: bool = True) -> None:
    """Load a state dict from ``.safetensors`` or ``.pt/.pth`` (weights only) into ``module``.

    Raises:
        UserError: for a missing file, an unknown extension, a pickle that holds code, or
            keys/shapes that do not match the model.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"cannot read safetensors file {path}: {exc}") from exc
    elif suffix in (".pt", ".pth", ".bin"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe pickle"
            raise UserError(
                f"refused to load {path}: it holds more than tensors ({first}); "
                "save a plain state_dict, or convert it to .safetensors"
            ) from exc
        except (RuntimeError, OSError, EOFError) as exc:
            raise UserError(f"cannot read weights file {path}: {exc}") from exc
        if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise UserError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    else:
        raise UserError(f"unsupported weights format {suffix!r} for {path}; use .safetensors, .pt or .pth")
    try:
        module.load_state_dict(dict(state), strict=strict)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise UserError(f"weights in {path} do not fit the model: {detail[:400]}") from exc
