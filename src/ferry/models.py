"""Model sources: ``zoo:NAME``, ``path/to/file.py:Attr`` and ``package.module:Attr``.

Weights are loaded only through safe paths: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ferry.errors import UserError
from ferry.specs import InputSpec
from ferry.weights import load_state_dict


@dataclass
class LoadedModel:
    """An ``nn.Module`` in eval mode plus what ferry knows about its I/O.

    Attributes:
        module: the model, in eval mode.
        source: the source string it was loaded from.
        inputs: declared input specs (zoo models) or an empty tuple when the user must give them.
        outputs: declared output names, or empty when they are to be derived at export.
        tolerance: default (rtol, atol) for float32 parity.
        task: task metadata (zoo models only).
        weights: path of the weights file that was loaded, if any.
    """

    module: nn.Module
    source: str
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[str, ...] = ()
    tolerance: tuple[float, float] = (1e-4, 1e-5)
    task: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    preprocess: Callable[[Image.Image], list[np.ndarray]] | None = None
    #: per-output (rtol, atol) that override the defaults, for any dtype.
    output_tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def input_names(self) -> list[str]:
        """Names of ``forward``'s positional parameters, in order."""
        return forward_arg_names(self.module)


def forward_arg_names(module: nn.Module) -> list[str]:
    """The positional parameter names of ``module.forward`` (without ``self``)."""
    sig = inspect.signature(module.forward)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in sig.parameters.values() if p.kind in kinds]


def _resolve_attr(source: str) -> Any:
    target, sep, attr = source.rpartition(":")
    if not sep or not target or not attr:
        raise UserError(f"bad model source {source!r}; use zoo:NAME, path/to/file.py:Class or package.module:Class")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise UserError(f"model file not found: {path}")
        mod_name = f"ferry_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise UserError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        # Let the user's file import its siblings.
        sys.path.insert(0, str(path.resolve().parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's code may raise anything while importing
            sys.modules.pop(mod_name, None)
            raise UserError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise UserError(f"cannot import module {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        public = sorted(n for n in dir(module) if not n.startswith("_"))
        raise UserError(f"{target} has no attribute {attr!r}; it defines: {', '.join(public[:20])}") from None


def load_model(
    source: str | nn.Module,
    *,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Build a model from a source string and put it in eval mode.

    Args:
        source: ``zoo:NAME``, ``path/to/file.py:Attr``, ``package.module:Attr`` (Attr is an
            ``nn.Module`` class or a factory returning one), or an ``nn.Module`` instance.
        args: keyword arguments for the class or factory.
        weights: a ``.safetensors`` / ``.pt`` / ``.pth`` state dict to load.

    Example:
        >>> m = load_model("zoo:superres")
        >>> m.inputs[0].shape
        (1, 1, 224, 224)
    """
    kwargs = dict(args or {})
    if isinstance(source, nn.Module):
        loaded = LoadedModel(module=source, source=type(source).__name__)
    elif source.startswith("zoo:"):
        from ferry import zoo

        entry = zoo.get(source[4:])
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                module = entry.build(**kwargs)
        except TypeError as exc:
            raise UserError(f"bad --arg for {source}: {exc}") from exc
        loaded = LoadedModel(
            module=module,
            source=source,
            inputs=entry.inputs,
            outputs=entry.outputs,
            tolerance=entry.tolerance,
            task=dict(entry.task),
            preprocess=entry.preprocess,
        )
    else:
        obj = _resolve_attr(source)
        if isinstance(obj, nn.Module):
            if kwargs:
                raise UserError(f"{source} is a module instance; --arg only applies to a class or a factory")
            module = obj
        elif callable(obj):
            try:
                # A fixed seed gives every load of the same source the same random weights, so
                # that export and verify agree when no --weights file is given.
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    module = obj(**kwargs)
            except TypeError as exc:
                raise UserError(f"cannot build {source} with {kwargs}: {exc}") from exc
        else:
            raise UserError(f"{source} is neither an nn.Module class nor a factory")
        if not isinstance(module, nn.Module):
            raise UserError(f"{source} returned {type(module).__name__}, not a torch.nn.Module")
        loaded = LoadedModel(module=module, source=source)
    if weights is not None:
        load_state_dict(loaded.module, weights)
        loaded.weights = str(weights)
    loaded.module.eval()
    return loaded


def named_inputs(model: LoadedModel, specs: Sequence[InputSpec] | None) -> tuple[InputSpec, ...]:
    """Resolve the input specs for ``model``: the user's, else the declared ones, with names.

    Raises:
        UserError: when no specs are known or their count does not match ``forward``.
    """
    chosen = tuple(specs) if specs else model.inputs
    if not chosen:
        raise UserError(
            f"{model.source} declares no inputs; give one --input per forward() argument, e.g. --input 1,3,224,224"
        )
    # A zoo model keeps its declared input names even when the user overrides the shapes.
    names = [s.name for s in model.inputs] if model.inputs else model.input_names
    if len(chosen) > len(names):
        raise UserError(f"{model.source}.forward takes {len(names)} input(s) but {len(chosen)} --input were given")
    if not model.inputs:
        sig = inspect.signature(model.module.forward)
        required = [n for n in names if sig.parameters[n].default is inspect.Parameter.empty]
        if len(chosen) < len(required):
            raise UserError(
                f"{model.source}.forward needs {len(required)} input(s) ({', '.join(required)})"
                f" but {len(chosen)} --input were given"
            )
    return tuple(s if s.name else s.with_name(n) for s, n in zip(chosen, names, strict=False))
