"""Decoder LMs that return a KV cache (a transformers ``Cache`` object, e.g. ``DynamicCache``).

An ONNX graph takes and returns tensors, so the exported graph is one decoding step with the cache
flattened into named tensors, as Optimum's exporter names them::

    input_ids [batch, seq], past_key_values.N.key / .value [batch, heads, past, head_dim]
      -> logits [batch, seq, vocab], present.N.key / .value [batch, heads, past + seq, head_dim]

``past`` is a dynamic dim of its own, so a runtime feeds the ``present`` tensors of one step as
the ``past_key_values`` of the next. The step takes no attention mask and no position ids: every
new token attends to the whole past, and positions continue from the past's length (one sequence,
or a batch of sequences of one length). ``--no-cache`` exports the forward pass with
``use_cache=False`` instead: logits only.

transformers is imported only here, and only once a model has returned a cache object.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ferry.errors import UserError
from ferry.models import LoadedModel
from ferry.specs import Dim, InputSpec

#: ``ferry.kv_cache`` metadata: the cache is flattened into past/present tensors
FLAT = "past-present"
#: ``ferry.kv_cache`` metadata: the model was exported with ``use_cache=False``
DROPPED = "dropped"
#: the dynamic dim of the past's length, and its example size
PAST = "past"
PAST_EXAMPLE = 8
PAST_PREFIX = "past_key_values."
#: forward() arguments the exported step derives from the cache's length itself
DERIVED = ("attention_mask", "position_ids", "cache_position")


def is_cache(value: object) -> bool:
    """Whether ``value`` is a transformers cache object (transformers is imported only then)."""
    if not type(value).__module__.startswith("transformers."):
        return False
    from transformers.cache_utils import Cache

    return isinstance(value, Cache)


def cache_key(result: object) -> str | int | None:
    """The key (or index) of the cache object in a forward() result, ``None`` when there is none."""
    items: Any = ()
    if isinstance(result, Mapping):
        items = result.items()
    elif isinstance(result, (tuple, list)):
        items = enumerate(result)
    return next((k for k, v in items if is_cache(v)), None)


def _cache_argument(module: nn.Module) -> str:
    params = inspect.signature(module.forward).parameters
    for name in ("past_key_values", "cache"):
        if name in params:
            return name
    raise UserError(
        f"{type(module).__name__} returns a KV cache but its forward() takes no past_key_values or cache"
        " argument to feed it back; export with --no-cache"
    )


def layer_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (key, value) tensors of a transformers cache."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for i, layer in enumerate(layers):
            # Recurrent states (linear attention, state-space layers) and sliding windows (whose
            # length stops growing) do not fit the past -> past + seq layout.
            if hasattr(layer, "recurrent_states") or getattr(layer, "is_sliding", False):
                kind = "a sliding-window" if getattr(layer, "is_sliding", False) else "a recurrent-state"
                raise UserError(f"layer {i} of the KV cache is {kind} layer, which ferry cannot export; use --no-cache")
            if not isinstance(getattr(layer, "keys", None), torch.Tensor):
                raise UserError(f"layer {i} of the KV cache holds no key tensor; use --no-cache")
        return [(layer.keys, layer.values) for layer in layers]
    if hasattr(cache, "to_legacy_cache"):  # transformers before the per-layer cache objects
        return [(kv[0], kv[1]) for kv in cache.to_legacy_cache()]
    raise UserError(f"cannot read key/value tensors from {type(cache).__name__}; export with --no-cache")


def _new_cache(model: nn.Module, past: Sequence[torch.Tensor]) -> Any:
    from transformers import DynamicCache

    pairs = [(past[i], past[i + 1]) for i in range(0, len(past), 2)]
    config = getattr(model, "config", None)
    try:
        return DynamicCache(pairs, config=config)
    except TypeError:  # transformers before DynamicCache(..., config=)
        return DynamicCache(pairs)


def _items(out: Any) -> dict[str, Any]:
    """A forward() result as a dict: a ``ModelOutput``'s fields, or a tuple's items by index."""
    if isinstance(out, Mapping):
        return {str(k): v for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return {f"output_{i}": v for i, v in enumerate(out)}
    return {"output": out}


class CacheStep(nn.Module):
    """One decoding step with the cache as tensors: ``(*inputs, *past) -> {logits, present...}``.

    Args:
        model: the decoder LM.
        names: its forward() arguments fed from the leading tensors, by keyword.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)
        self.cache_argument = _cache_argument(model)

    def forward(self, *tensors: torch.Tensor) -> dict[str, Any]:
        feeds = dict(zip(self.names, tensors[: len(self.names)], strict=True))
        cache = _new_cache(self.model, tensors[len(self.names) :])
        out = _items(self.model(**feeds, **{self.cache_argument: cache}, use_cache=True))
        result = {k: v for k, v in out.items() if v is not None and not is_cache(v)}
        for returned in (v for v in out.values() if is_cache(v)):
            for i, (k, v) in enumerate(layer_tensors(returned)):
                result[f"present.{i}.key"] = k
                result[f"present.{i}.value"] = v
        return result


class NoCache(nn.Module):
    """The model's forward pass with ``use_cache=False``: its outputs but the cache."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.names = tuple(names)

    def forward(self, *tensors: torch.Tensor) -> dict[str, Any]:
        out = _items(self.model(**dict(zip(self.names, tensors, strict=True)), use_cache=False))
        return {k: v for k, v in out.items() if v is not None and not is_cache(v)}


def _past_specs(
    specs: Sequence[InputSpec], layers: list[tuple[torch.Tensor, torch.Tensor]], past: str
) -> list[InputSpec]:
    lead = specs[0].dims[0]
    result = []
    for i, (key, value) in enumerate(layers):
        for kind, tensor in (("key", key), ("value", value)):
            if tensor.dim() != 4:
                raise UserError(
                    f"the cache's layer {i} {kind} has shape {list(tensor.shape)}, not [batch, heads, length, head_dim];"
                    " export with --no-cache"
                )
            batch = lead if tensor.shape[0] == lead.size else Dim(int(tensor.shape[0]))
            dims = (batch, Dim(int(tensor.shape[1])), Dim(PAST_EXAMPLE, past), Dim(int(tensor.shape[3])))
            dtype = str(tensor.dtype).removeprefix("torch.")
            result.append(InputSpec(dims, dtype, name=f"{PAST_PREFIX}{i}.{kind}"))
    return result


def _checked_plain(loaded: LoadedModel, specs: Sequence[InputSpec], argument: str) -> None:
    derived = [s.name for s in specs if s.name in (*DERIVED, argument)]
    if derived:
        raise UserError(
            f"{loaded.source} returns a KV cache: the exported decoding step derives {', '.join(derived)} from the"
            " cache's length itself; give only the token inputs (e.g. --input batch=1,seq=16:int64:0:VOCAB),"
            " or export with --no-cache"
        )


def with_cache(loaded: LoadedModel, specs: Sequence[InputSpec], cache: Any) -> LoadedModel:
    """The model as one decoding step with its cache as named tensors (see the module's notes).

    Args:
        loaded: the decoder LM.
        specs: its token inputs, named.
        cache: the cache it returned for them (its layers give the shapes and dtype of the past).
    """
    step = CacheStep(loaded.module, [s.name for s in specs]).eval()
    _checked_plain(loaded, specs, step.cache_argument)
    taken = {d.name for s in specs for d in s.dims if d.name}
    past = PAST if PAST not in taken else f"{PAST}_length"
    inputs = (*specs, *_past_specs(specs, layer_tensors(cache), past))
    return replace(loaded, module=step, inputs=inputs, outputs=())


def without_cache(loaded: LoadedModel, specs: Sequence[InputSpec]) -> LoadedModel:
    """The model called with ``use_cache=False``: logits (and any other output) but no cache."""
    return replace(loaded, module=NoCache(loaded.module, [s.name for s in specs]).eval(), inputs=tuple(specs))


def as_stored(loaded: LoadedModel, mode: str, specs: Sequence[InputSpec]) -> LoadedModel:
    """The model in the form an export with the ``kv_cache`` metadata ``mode`` wrote it, for the
    stages that run it beside the file; ``specs`` are the inputs stored in the file."""
    if isinstance(loaded.module, (CacheStep, NoCache)) or mode not in (FLAT, DROPPED):
        return loaded
    plain = [s for s in specs if not s.name.startswith(PAST_PREFIX)]
    if mode == DROPPED:
        return without_cache(loaded, plain)
    step = CacheStep(loaded.module, [s.name for s in plain]).eval()
    return replace(loaded, module=step, inputs=tuple(specs), outputs=())
