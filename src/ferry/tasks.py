"""Applications served by the generic stages without the stages knowing them.

A model's task metadata (``kind``, ``preprocess``, ``scale``...) is stored in every ONNX file
ferry exports. An application (super-resolution is the built-in one) registers a :class:`Task`
for its ``kind`` through the ``ferry.tasks`` entry-point group; export, verify, optimize and the
package targets look the task up here and call its hooks where the application knows better
than a generic rule: an I/O wrapper built into the graph, a quality gate on real data, images
to calibrate on, a comparison on real photos in the verify report, a web page.

Every hook is optional and may decline (return ``None``) for a model of its kind that it does
not serve; the stages then fall back to their generic behaviour. Adding an application is one
package that defines its ``Task`` and one entry point in ``pyproject.toml``::

    [project.entry-points."ferry.tasks"]
    segmentation = "mypackage.ferry_task:TASK"
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from ferry.errors import InternalError
from ferry.registry import Registry

if TYPE_CHECKING:
    import os

    import onnx
    from PIL import Image

    from ferry.backends.base import Session
    from ferry.models import LoadedModel
    from ferry.optimize import Gate
    from ferry.package.targets.base import BuildContext
    from ferry.serve import Endpoint, ServeContext

ENTRY_POINT_GROUP = "ferry.tasks"


@dataclass(frozen=True)
class TaskInfo:
    """Task metadata, typed: what a model computes and how its inputs are made.

    Attributes:
        kind: the application (``super-resolution``, ``classification``...); ``""`` for none.
        preprocess: name of the :mod:`ferry.preprocessing` that turns a photo into the inputs.
        scale: upscale factor of an image-to-image model.
        io: name of an I/O wrapper built into the graph (e.g. ``rgb-uint8``), ``""`` for none.
        colour: how pixels are encoded, in words.
        input_layout: layout of the inputs, in words (``N x 1 x H x W``).
        output_layout: layout of the outputs, in words.
        extra: any other key the metadata holds (kept through a round trip).
    """

    kind: str = ""
    preprocess: str = ""
    scale: int | None = None
    io: str = ""
    colour: str = ""
    input_layout: str = ""
    output_layout: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("kind", "preprocess", "scale", "io", "colour", "input_layout", "output_layout")

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any] | None) -> TaskInfo:
        """Read metadata as stored in an ONNX file or declared by a zoo model (unknown keys kept)."""
        meta = dict(meta or {})
        scale = meta.get("scale")
        return cls(
            kind=str(meta.get("kind") or ""),
            preprocess=str(meta.get("preprocess") or ""),
            scale=int(scale) if isinstance(scale, (int, float, str)) and str(scale).isdigit() else None,
            io=str(meta.get("io") or ""),
            colour=str(meta.get("colour") or ""),
            input_layout=str(meta.get("input_layout") or ""),
            output_layout=str(meta.get("output_layout") or ""),
            extra={k: v for k, v in meta.items() if k not in cls._KEYS},
        )


class TaskReport(Protocol):
    """A task's own section of the verify report (e.g. every runtime upscaling real photos)."""

    @property
    def title(self) -> str:
        """Heading in the HTML report."""

    @property
    def caption(self) -> str:
        """Caption of the table in the terminal."""

    @property
    def headers(self) -> list[str]: ...

    def rows(self) -> list[list[object]]: ...

    def notes(self) -> list[tuple[str, str]]:
        """(subject, note) lines shown under the table."""

    def html(self) -> str:
        """HTML shown under the table in the report (figures, notes)."""

    def to_dict(self) -> dict[str, Any]: ...


#: Reopens a runtime for one set of static input sizes (a static-shape target at a photo's size).
Reopen = Callable[[str, Mapping[str, int]], "Session"]


@dataclass(frozen=True)
class Task:
    """An application's hooks into the generic stages; each is optional.

    Attributes:
        name: the ``kind`` in task metadata that this task serves.
        summary: one line for listings.
        io_name: the ``io`` value of a model wrapped by :attr:`wrap_io`.
        wrap_io: ``export(rgb_io=True)``: the model with its pre/post-processing inside the
            graph; raises :class:`~ferry.errors.UserError` for a model it cannot wrap.
        quality_gate: ``optimize``: ``(proto, run_original, run_optimized, max_drop)`` -> a
            gate on real data for this task, or ``None`` to use the generic tensor gate.
            A run function takes named inputs and returns the outputs in graph order.
        calibration_images: ``optimize --quantize int8`` without ``--calibration``: images to
            calibrate a model of this task on (never those the gate uses), or ``None``.
        photo_report: ``verify --images``: ``(model, sessions, folder, onnx_path, reopen)`` ->
            a report section of every runtime on real photos, or ``None``.
        web_page: the ``web`` package target: writes the page and the model it runs into the
            package folder and returns the file names.
        serve_backend: ``ferry serve --backend auto``: ``(onnx_path, threads, on_status)`` -> the
            backend name to serve this model on (a measured choice), or ``None`` for ONNX Runtime.
            The choice must keep the model's numbers (fp32): the inference endpoint returns them.
        serve_endpoints: ``ferry serve``: ``ServeContext`` -> the task's own HTTP endpoints
            (path -> :class:`ferry.serve.Endpoint`, e.g. ``POST /upscale`` and a page at ``/``)
            beside the inference protocol, or ``None``.
    """

    name: str
    summary: str
    io_name: str = ""
    wrap_io: Callable[[LoadedModel], LoadedModel] | None = None
    quality_gate: Callable[[onnx.ModelProto, RunFn, RunFn, float], Gate | None] | None = None
    calibration_images: Callable[[TaskInfo], list[tuple[str, Image.Image]] | None] | None = None
    photo_report: (
        Callable[[LoadedModel, Mapping[str, Session], os.PathLike[str] | str, os.PathLike[str] | str, Reopen], Any]
        | None
    ) = None
    web_page: Callable[[BuildContext], list[str]] | None = None
    serve_backend: Callable[[os.PathLike[str] | str, int, Callable[[str], None] | None], str | None] | None = None
    serve_endpoints: Callable[[ServeContext], Mapping[str, Endpoint] | None] | None = None


RunFn = Callable[[Mapping[str, Any]], Sequence[Any]]


@functools.cache
def registry() -> Registry[Task]:
    """Every installed task, from the ``ferry.tasks`` entry points (loaded once)."""
    reg: Registry[Task] = Registry("task")
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        task = ep.load()
        if not isinstance(task, Task) or task.name != ep.name:
            raise InternalError(f"entry point {ep.value} ({ENTRY_POINT_GROUP}) is not a Task named {ep.name!r}")
        reg.register(task)
    return reg


def for_kind(kind: str) -> Task | None:
    """The registered task serving ``kind``, or ``None``."""
    reg = registry()
    return reg.get(kind) if kind in reg else None


def of(meta: Mapping[str, Any] | TaskInfo | None) -> tuple[TaskInfo, Task | None]:
    """Typed metadata and the task registered for its kind (``None`` when there is none)."""
    info = meta if isinstance(meta, TaskInfo) else TaskInfo.from_dict(meta)
    return info, for_kind(info.kind)
