"""Export a PyTorch model to ONNX with named I/O, dynamic axes and ferry metadata.

``exporter="auto"`` tries ``torch.export`` (the dynamo exporter) first and falls back to the
TorchScript exporter, recording why the first one failed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
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
from ferry.models import LoadedModel, load_model, named_inputs
from ferry.samples import random_inputs
from ferry.specs import InputSpec

Exporter = Literal["auto", "dynamo", "torchscript"]
# Protobuf cannot serialise a model of 2 GiB or more: weights go to an external file above this.
EXTERNAL_DATA_THRESHOLD = 2**31 - 64 * 2**20


@dataclass(frozen=True)
class ExportConfig:
    """How to export.

    Attributes:
        opset: ai.onnx opset version.
        exporter: ``auto``, ``dynamo`` (torch.export) or ``torchscript``.
        constant_folding: fold constant subgraphs (dynamo: run its graph optimizer).
        external_data: store weights in ``OUT.onnx.data``; ``None`` decides by size (2 GB).
    """

    opset: int = DEFAULT_OPSET
    exporter: Exporter = "auto"
    constant_folding: bool = True
    external_data: bool | None = None


@dataclass
class ExportResult:
    """A written ONNX file and how it was made."""

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

    def __bool__(self) -> bool:
        return self.path.is_file()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "exporter": self.exporter,
            "opset": self.opset,
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": list(self.outputs),
            "source": self.source,
            "seconds": self.seconds,
            "size_bytes": self.size_bytes,
            "external_data": self.external_data,
            "fallback_reason": self.fallback_reason,
            "warnings": self.warnings,
        }


def _output_names(
    loaded: LoadedModel, specs: Sequence[InputSpec], example: tuple[torch.Tensor, ...]
) -> tuple[str, ...]:
    """Output names, with the user's forward() failing on the example inputs reported as such."""
    try:
        return output_names_for(loaded, example)
    except UserError:
        raise
    except Exception as exc:  # the user's forward() may raise anything
        raise UserError(
            f"{loaded.source} failed on example inputs {[str(s) for s in specs]}: {first_line(exc, root=True)};"
            " check the --input shapes and dtypes"
        ) from exc


def _run_exporters(
    loaded: LoadedModel,
    example: tuple[torch.Tensor, ...],
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
) -> tuple[onnx.ModelProto, str, dict[str, str], list[str]]:
    """Try the exporters in order; the first that works gives the model.

    Returns:
        The model, the exporter used, each failed exporter's reason, and the warnings caught.

    Raises:
        UserError: every exporter failed (with each one's reason).
    """
    order = ["dynamo", "torchscript"] if cfg.exporter == "auto" else [cfg.exporter]
    failures: dict[str, str] = {}
    caught: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ferry-export-") as work:
        for name in order:
            try:
                with _quiet() as caught:
                    if name == "dynamo":
                        proto = _dynamo_export(loaded.module, example, specs, outputs, cfg)
                    else:
                        proto = _torchscript_export(loaded.module, example, specs, outputs, cfg, Path(work))
                return proto, name, failures, caught
            except Exception as exc:  # exporters raise many unrelated types; each is reported
                failures[name] = first_line(exc, root=True)
    detail = "; ".join(f"{k} exporter: {v}" for k, v in failures.items())
    hint = " try --exporter torchscript" if cfg.exporter == "dynamo" else ""
    raise UserError(f"export of {loaded.source} failed ({detail});{hint or ' see --debug for the traceback'}")


def _stamp(
    proto: onnx.ModelProto, loaded: LoadedModel, specs: Sequence[InputSpec], outputs: Sequence[str], used: str
) -> None:
    """Store what ferry knows about the model in the file (read back by every other stage)."""
    onnx_file.write_metadata(
        proto,
        {
            "version": __version__,
            "exporter": used,
            "source": loaded.source,
            "inputs": [s.to_dict() for s in specs],
            "outputs": list(outputs),
            "task": loaded.task,
            "tolerance": list(loaded.tolerance),
        },
    )
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


def example_inputs(specs: Sequence[InputSpec], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Deterministic example tensors for the given specs (used to trace the model)."""
    return tuple(torch.from_numpy(a) for a in random_inputs(specs, seed).values())


def output_names_for(model: LoadedModel, args: tuple[torch.Tensor, ...]) -> tuple[str, ...]:
    """Declared output names, or names derived from one forward pass on ``args``."""
    if model.outputs:
        return model.outputs
    with torch.inference_mode():
        result = model.module(*args)
    return tuple(name for name, _ in flatten_outputs(result))


@contextlib.contextmanager
def _quiet() -> Iterator[list[str]]:
    """Capture warnings and the exporters' chatter on stdout/stderr; yield the warning texts."""
    caught: list[str] = []
    sink = io.StringIO()
    # torch.onnx and torch.export log notes (e.g. "torchvision is not installed") through logging.
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch.fx", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    with (
        warnings.catch_warnings(record=True) as records,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        warnings.simplefilter("always")
        try:
            yield caught
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)
    seen: set[str] = set()
    for rec in records:
        msg = str(rec.message).split("\n")[0]
        # Deprecation notices from torch's own internals say nothing about the user's model.
        if issubclass(rec.category, (DeprecationWarning, FutureWarning)) or msg in seen:
            continue
        seen.add(msg)
        caught.append(msg)


def _dynamo_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
) -> onnx.ModelProto:
    from torch.export import Dim

    dims: dict[str, Any] = {}
    dynamic: list[dict[int, Any] | None] = []
    for spec in specs:
        axes = {}
        for axis, name in spec.dynamic_axes.items():
            axes[axis] = dims.setdefault(name, Dim(name, min=1))
        dynamic.append(axes or None)
    program = torch.onnx.export(
        module,
        args,
        dynamo=True,
        input_names=[s.name for s in specs],
        output_names=list(outputs),
        opset_version=cfg.opset,
        dynamic_shapes=tuple(dynamic) if any(dynamic) else None,
        optimize=cfg.constant_folding,
        verbose=False,
    )
    if program is None:  # only the TorchScript path returns None
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto


def _torchscript_export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    specs: Sequence[InputSpec],
    outputs: Sequence[str],
    cfg: ExportConfig,
    workdir: Path,
) -> onnx.ModelProto:
    path = workdir / "torchscript.onnx"
    dynamic_axes = {s.name: dict(s.dynamic_axes) for s in specs if s.dynamic_axes}
    torch.onnx.export(
        module,
        args,
        str(path),
        dynamo=False,
        input_names=[s.name for s in specs],
        output_names=list(outputs),
        opset_version=cfg.opset,
        dynamic_axes=dynamic_axes or None,
        do_constant_folding=cfg.constant_folding,
    )
    return onnx.load(str(path))


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
        The written file, the exporter that produced it, and why ``auto`` fell back if it did.

    Example:
        >>> res = ferry.export("zoo:superres", "sr.onnx")
        >>> res.exporter
        'dynamo'
    """
    cfg = config or ExportConfig()
    if cfg.exporter not in ("auto", "dynamo", "torchscript"):
        raise UserError(f"unknown exporter {cfg.exporter!r}; known: auto, dynamo, torchscript")
    if not 7 <= cfg.opset <= 23:
        raise UserError(f"opset {cfg.opset} is out of range; use an opset from 7 to 23 (default {DEFAULT_OPSET})")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, args=args, weights=weights)
    if rgb_io:
        loaded = wrap_io(loaded)
    specs = named_inputs(loaded, inputs)
    example = example_inputs(specs)
    outputs = _output_names(loaded, specs, example)
    out = Path(output)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"output {out} must end in .onnx")
    external = (
        cfg.external_data if cfg.external_data is not None else _model_bytes(loaded.module) > EXTERNAL_DATA_THRESHOLD
    )
    start = time.perf_counter()
    proto, used, failures, caught = _run_exporters(loaded, example, specs, outputs, cfg)
    _stamp(proto, loaded, specs, outputs, used)
    _write(proto, out, external)
    seconds = time.perf_counter() - start
    size = out.stat().st_size + ((out.parent / (out.name + ".data")).stat().st_size if external else 0)
    return ExportResult(
        path=out,
        exporter=used,
        opset=cfg.opset,
        inputs=specs,
        outputs=tuple(outputs),
        source=loaded.source,
        seconds=seconds,
        size_bytes=size,
        external_data=external,
        fallback_reason=failures.get("dynamo") if used == "torchscript" and cfg.exporter == "auto" else None,
        warnings=caught,
    )
