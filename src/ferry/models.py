"""Model sources: ``zoo:NAME``, ``path/to/file.py:Attr`` and ``package.module:Attr``.

Weights are loaded only through safe paths: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ferry._inputs import input_file
from ferry._messages import native_message
from ferry.errors import FerryError, UserError, first_line
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


@contextlib.contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run the user's own code (importing their file, building or calling their model): anything
    it raises, ``SystemExit`` included, is the user's error, reported as one line that says so.

    Args:
        what: what was being done, e.g. ``"building m.py:Net"``; the message starts with it.

    Raises:
        UserError: for any exception the code raised (ferry's own errors pass unchanged).
    """
    try:
        yield
    except FerryError:
        raise
    except SystemExit as exc:
        raise UserError(f"{what} called sys.exit({exc.code!r}); a model must not exit the program") from exc
    except Exception as exc:
        raise UserError(f"{what} raised {native_message(exc)} (in your code, not in ferry's)") from exc


def _import_file(path: Path) -> ModuleType:
    """Import a user's ``.py`` file as a module of its own (it may import its siblings)."""
    mod_name = f"ferry_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        with user_code(f"importing {path}"):
            spec.loader.exec_module(module)
    except UserError:
        sys.modules.pop(mod_name, None)
        raise
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _resolve_attr(source: str) -> Any:
    target, sep, attr = source.rpartition(":")
    if not sep or not target or not attr:
        raise UserError(f"bad model source {source!r}; use zoo:NAME, path/to/file.py:Class or package.module:Class")
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _import_file(input_file(target, "model file", hint="give path/to/file.py:Class"))
    else:
        try:
            with user_code(f"importing module {target!r}"):
                module = importlib.import_module(target)
        except UserError as exc:
            if isinstance(exc.__cause__, ImportError):
                raise UserError(f"cannot import module {target!r}: {first_line(exc.__cause__)}") from exc
            raise
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
            module = _build(obj, source, kwargs)
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


def _build(factory: Callable[..., Any], source: str, kwargs: dict[str, Any]) -> Any:
    """Call the user's class or factory with ``kwargs``, with a fixed seed: every load of the same
    source gets the same random weights, so that export and verify agree without --weights."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and some C extensions have none
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise UserError(f"cannot build {source} with {kwargs}: {exc}") from exc
    with user_code(f"building {source}"), torch.random.fork_rng():
        torch.manual_seed(0)
        return factory(**kwargs)


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
