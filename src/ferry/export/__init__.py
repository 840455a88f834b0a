"""Export a PyTorch model to ONNX with named I/O, dynamic axes and ferry metadata.

``exporter="auto"`` tries ``torch.export`` (the dynamo exporter) first and falls back to the
TorchScript exporter, recording in one line why the first one failed (what, and where in the
model's code). Every file is checked against the dynamic dims that were asked for: a dim that
came out static is exported again from a larger example or refused, never reported as dynamic
(:mod:`ferry.export._exporters`). A decoder LM that returns a KV cache is exported as one decoding
step with the cache as named tensors (:mod:`ferry.export._kv_cache`). What the exporters print is
kept off the terminal and can go to a log file (:mod:`ferry.export._capture`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx
import torch
from torch import nn

from ferry import onnx_file
from ferry._defaults import DEFAULT_OPSET
from ferry._version import __version__
from ferry.backends.torch import flatten_outputs
from ferry.errors import UserError, first_line
from ferry.export import _kv_cache
from ferry.export._capture import Capture, capture, write_log
from ferry.export._exporters import Exported, ExportFailed, example_inputs, run_exporters
from ferry.models import LoadedModel, load_model, named_inputs
from ferry.specs import InputSpec, TensorInfo

Exporter = Literal["auto", "dynamo", "torchscript"]
# Protobuf cannot serialise a model of 2 GiB or more: weights go to an external file above this.
EXTERNAL_DATA_THRESHOLD = 2**31 - 64 * 2**20

__all__ = [
    "EXTERNAL_DATA_THRESHOLD",
    "ExportConfig",
    "ExportResult",
    "Exporter",
    "as_exported",
    "example_inputs",
    "export",
    "output_names_for",
    "wrap_io",
]


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        opset: ai.onnx opset version.
        exporter: ``auto``, ``dynamo`` (torch.export) or ``torchscript``.
        constant_folding: fold constant subgraphs (dynamo: run its graph optimizer).
        external_data: store weights in ``OUT.onnx.data``; ``None`` decides by size (2 GB).
        kv_cache: a decoder LM returning a KV cache is exported with the cache as
            ``past_key_values.N.key/value`` inputs and ``present.N.key/value`` outputs; ``False``
            exports it with ``use_cache=False`` (logits only).
        log: write everything the exporters printed, warned and logged (and each failure's
            traceback) to this file.
        verbose: let the exporters print to the terminal (``--debug``).
    """

    opset: int = DEFAULT_OPSET
    exporter: Exporter = "auto"
    constant_folding: bool = True
    external_data: bool | None = None
    kv_cache: bool = True
    log: str | os.PathLike[str] | None = None
    verbose: bool = False


def _info_dict(info: TensorInfo) -> dict[str, Any]:
    return {"name": info.name, "dtype": info.dtype, "shape": list(info.shape)}


@dataclass
class ExportResult:
    """A written ONNX file and how it was made.

    Attributes:
        inputs: the input specs (example sizes, dynamic dims); every dynamic dim is dynamic in
            the file too.
        graph_inputs: the file's inputs as it declares them (a string is a dynamic dim).
        graph_outputs: the file's outputs as it declares them.
        fallback_reason: why ``auto`` did not use the dynamo exporter, in one line.
        notes: what ferry did on the way (e.g. traced a size-1 dim at size 2).
        kv_cache: ``past-present`` (the cache as named tensors), ``dropped`` (``--no-cache``), or
            ``None`` for a model without a cache.
        log: the log file written, if one was asked for.
    """

    path: Path
    exporter: str
    opset: int
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    source: str
    seconds: float
    size_bytes: int
    external_data: bool
    fallback_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    graph_inputs: tuple[TensorInfo, ...] = ()
    graph_outputs: tuple[TensorInfo, ...] = ()
    notes: list[str] = field(default_factory=list)
    kv_cache: str | None = None
    log: Path | None = None

    def __bool__(self) -> bool:
        return self.path.is_file()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exporter": self.exporter,
            "opset": self.opset,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": list(self.outputs),
            "graph": {
                "inputs": [_info_dict(i) for i in self.graph_inputs],
                "outputs": [_info_dict(o) for o in self.graph_outputs],
            },
            "source": self.source,
            "seconds": self.seconds,
            "size_bytes": self.size_bytes,
            "external_data": self.external_data,
            "fallback_reason": self.fallback_reason,
            "warnings": self.warnings,
            "notes": self.notes,
            "kv_cache": self.kv_cache,
            "log": str(self.log) if self.log else None,
        }


def _forward(loaded: LoadedModel, specs: Sequence[InputSpec]) -> Any:
    """One forward pass on the example inputs, the user's forward() failing reported as such."""
    try:
        with torch.inference_mode():
            return loaded.module(*example_inputs(specs))
    except UserError:
        raise
    except SystemExit as exc:
        raise UserError(f"{loaded.source} called sys.exit({exc.code!r}) in forward(); a model must not exit") from exc
    except Exception as exc:  # the user's forward() may raise anything
        raise UserError(
            f"{loaded.source} failed on example inputs {[str(s) for s in specs]}: {first_line(exc, root=True)};"
            " check the --input shapes and dtypes"
        ) from exc


def _names(result: Any) -> tuple[str, ...]:
    return tuple(name for name, _ in flatten_outputs(result))


def _prepared(
    loaded: LoadedModel, inputs: Sequence[InputSpec] | None, cfg: ExportConfig
) -> tuple[LoadedModel, tuple[InputSpec, ...], tuple[str, ...], str | None]:
    """The model as it will be exported, its named inputs and outputs, and its ``kv_cache`` mode.

    A model returning a transformers cache object is wrapped into one decoding step with the
    cache as tensors (or called without the cache when ``cfg.kv_cache`` is off).
    """
    specs = named_inputs(loaded, inputs)
    if loaded.outputs:
        return loaded, specs, loaded.outputs, None
    result = _forward(loaded, specs)
    key = _kv_cache.cache_key(result)
    if key is None:
        return loaded, specs, _names(result), None
    if cfg.kv_cache:
        loaded, mode = _kv_cache.with_cache(loaded, specs, result[key]), _kv_cache.FLAT
    else:
        loaded, mode = _kv_cache.without_cache(loaded, specs), _kv_cache.DROPPED
    specs = named_inputs(loaded, loaded.inputs)
    return loaded, specs, _names(_forward(loaded, specs)), mode


def _stamp(
    proto: onnx.ModelProto,
    loaded: LoadedModel,
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    used: str,
    kv_cache: str | None,
) -> None:
    """Store what ferry knows about the model in the file (read back by every other stage)."""
    meta: dict[str, Any] = {
        "version": __version__,
        "exporter": used,
        "source": loaded.source,
        "inputs": [s.to_dict() for s in specs],
        "outputs": list(outputs),
        "task": loaded.task,
        "tolerance": list(loaded.tolerance),
    }
    if kv_cache:
        meta["kv_cache"] = kv_cache
    onnx_file.write_metadata(proto, meta)
    proto.producer_name = "ferry"
    proto.producer_version = f"{__version__} (torch {torch.__version__})"


def wrap_io(model: LoadedModel) -> LoadedModel:
    """The model with its task's I/O built into the graph (``--rgb-io``).

    Raises:
        UserError: the model's task has no such wrapper.
    """
    from ferry import tasks

    _, task = tasks.of(model.task)
    if task is None or task.wrap_io is None:
        raise UserError(f"--rgb-io needs a Y-channel super-resolution model such as zoo:superres, not {model.source}")
    return task.wrap_io(model)


def as_exported(loaded: LoadedModel, proto: onnx.ModelProto) -> LoadedModel:
    """The model in the form ferry exported it to ``proto``, for the stages that run it beside
    the file: a decoder LM as one decoding step with its cache as tensors (or without its cache),
    as the file's ``kv_cache`` metadata says; any other model as it is."""
    mode = onnx_file.read_metadata(proto).get("kv_cache")
    if not mode:
        return loaded
    return _kv_cache.as_stored(loaded, str(mode), onnx_file.stored_specs(proto))


def output_names_for(model: LoadedModel, args: tuple[torch.Tensor, ...]) -> tuple[str, ...]:
    """Declared output names, or names derived from one forward pass on ``args``."""
    if model.outputs:
        return model.outputs
    with torch.inference_mode():
        result = model.module(*args)
    return _names(result)


def _model_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _write(proto: onnx.ModelProto, out: Path, external: bool) -> None:
    """Write the model (and its external data) into a temp folder, then move into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        data_name = out.name + ".data"
        staged = tmpdir / out.name
        if external:
            onnx.save_model(
                proto,
                str(staged),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=0,
            )
            os.replace(tmpdir / data_name, out.parent / data_name)
        else:
            onnx.save_model(proto, str(staged))
        os.replace(staged, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _checked(cfg: ExportConfig, output: str | os.PathLike[str]) -> Path:
    if cfg.exporter not in ("auto", "dynamo", "torchscript"):
        raise UserError(f"unknown exporter {cfg.exporter!r}; known: auto, dynamo, torchscript")
    if not 7 <= cfg.opset <= 23:
        raise UserError(f"opset {cfg.opset} is out of range; use an opset from 7 to 23 (default {DEFAULT_OPSET})")
    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output {out} must end in .onnx")
    return out


def _exported(
    loaded: LoadedModel, specs: Sequence[InputSpec], outputs: Sequence[str], cfg: ExportConfig
) -> tuple[Exported, Capture, Path | None]:
    """Run the exporters with their output captured; write the log file if one was asked for.

    Raises:
        UserError: every exporter failed (each one's reason in one line).
    """
    with capture(verbose=cfg.verbose) as cap:
        try:
            made: Exported | ExportFailed = run_exporters(loaded.module, specs, outputs, cfg, cap)
        except ExportFailed as exc:
            made = exc
    log = write_log(cap, cfg.log) if cfg.log else None
    if isinstance(made, ExportFailed):
        if made.specialized:
            raise UserError(f"export of {loaded.source} refused: {made}")
        if cfg.exporter == "dynamo":
            hint = "try --exporter torchscript"
        else:
            hint = f"the exporters' full output is in {log}" if log else "see --debug or --log FILE for the full output"
        raise UserError(f"export of {loaded.source} failed ({made}); {hint}")
    return made, cap, log


def export(
    model: str | nn.Module | LoadedModel,
    output: str | os.PathLike[str],
    *,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    config: ExportConfig | None = None,
    rgb_io: bool = False,
) -> ExportResult:
    """Export a PyTorch model to an ONNX file.

    Args:
        model: a source string (``zoo:superres``, ``file.py:Class``, ``pkg.mod:factory``), an
            ``nn.Module``, or a :class:`LoadedModel`.
        output: the ``.onnx`` path to write (atomically).
        inputs: one spec per ``forward`` argument; optional for zoo models.
        args: constructor keyword arguments.
        weights: a state dict file to load first.
        config: exporter settings.
        rgb_io: export the model with its task's pre/post-processing inside the graph
            (:attr:`ferry.tasks.Task.wrap_io`); for a Y-channel super-resolution model: uint8
            ``H x W x 3`` RGB in, uint8 RGB out (colour conversion, bicubic chroma, merge).

    Returns:
        The written file, the exporter that produced it, why ``auto`` fell back if it did, and
        the file's inputs and outputs as it declares them.

    Raises:
        UserError: bad arguments, a forward() that fails on the example inputs, or no exporter
            that gives a file with every requested dynamic dim.

    Example:
        >>> res = ferry.export("zoo:superres", "sr.onnx")
        >>> res.exporter
        'dynamo'
    """
    cfg = config or ExportConfig()
    out = _checked(cfg, output)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, args=args, weights=weights)
    if rgb_io:
        loaded = wrap_io(loaded)
    loaded, specs, outputs, kv_cache = _prepared(loaded, inputs, cfg)
    external = (
        cfg.external_data if cfg.external_data is not None else _model_bytes(loaded.module) > EXTERNAL_DATA_THRESHOLD
    )
    start = time.perf_counter()
    made, cap, log = _exported(loaded, specs, outputs, cfg)
    _stamp(made.proto, loaded, specs, outputs, made.exporter, kv_cache)
    _write(made.proto, out, external)
    seconds = time.perf_counter() - start
    size = out.stat().st_size + ((out.parent / (out.name + ".data")).stat().st_size if external else 0)
    graph_inputs, graph_outputs = onnx_file.graph_io(made.proto)
    return ExportResult(
        path=out,
        exporter=made.exporter,
        opset=cfg.opset,
        inputs=specs,
        outputs=tuple(outputs),
        source=loaded.source,
        seconds=seconds,
        size_bytes=size,
        external_data=external,
        fallback_reason=made.failures.get("dynamo") if made.exporter == "torchscript" else None,
        warnings=cap.warnings,
        graph_inputs=graph_inputs,
        graph_outputs=graph_outputs,
        notes=made.notes,
        kv_cache=kv_cache,
        log=log,
    )
