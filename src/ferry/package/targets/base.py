"""What every package target shares: the build context, the target record and the README.

``quietly`` (re-exported) comes from :mod:`ferry.convert`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ferry._messages import foreign_errors, native_message
from ferry.errors import UnsupportedModelError, UserError
from ferry.registry import importable
from ferry.specs import InputSpec
from ferry.tasks import TaskInfo

if TYPE_CHECKING:
    from ferry.models import LoadedModel


@dataclass
class BuildContext:
    """What a target's builder gets: the model, its ONNX export and the folder to write into."""

    onnx_path: Path
    loaded: LoadedModel | None
    specs: tuple[InputSpec, ...]
    output_names: tuple[str, ...]
    task: dict[str, Any]
    folder: Path
    notes: list[str] = field(default_factory=list)
    #: extra manifest entries a target adds (e.g. the operators an ORT build must include)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the runtime's version when it is not the Python package the target imports (npm packages)
    runtime_version: str = ""


@dataclass(frozen=True)
class Target:
    """A deployment target: its name, runtime, the pip extra that installs its converter, and the
    function that writes the package. ``module`` targets start from the PyTorch module rather
    than from the ONNX file."""

    name: str
    summary: str
    runtime: str
    extra: str
    module: str
    build: Callable[[BuildContext], list[str]]
    needs_module: bool = False

    def available(self) -> bool:
        return importable(self.module)


@contextlib.contextmanager
def converting(target: str, tool: str) -> Iterator[None]:
    """Run a converter: whatever it raises on a model it cannot take becomes one line naming the
    target and the tool (ferry's errors and the operating system's, a full disk, pass unchanged).

    Raises:
        UnsupportedModelError: the converter failed, with the first line of its message.
    """
    with foreign_errors(lambda exc: _unsupported(target, tool, exc)):
        yield


def _unsupported(target: str, tool: str, exc: BaseException) -> UnsupportedModelError:
    detail = native_message(exc)
    return UnsupportedModelError(
        f"the {target} target: {tool} cannot convert this model ({detail}); check it with `ferry check`,"
        " or choose another target"
    )


def external_data_files(onnx_path: Path) -> list[str]:
    """The external data files a model's initializers point to, relative to its folder.

    Raises:
        UserError: a location outside the model's folder (absolute, or with ``..``).
    """
    import onnx

    from ferry import onnx_file

    proto = onnx_file.load(onnx_path, load_external_data=False)
    locations: list[str] = []
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        parts = PurePosixPath(location.replace("\\", "/")).parts
        if not location or location.startswith(("/", "\\")) or ".." in parts or ":" in location:
            raise UserError(
                f"{onnx_path}: initializer {tensor.name!r} points outside the model's folder ({location!r});"
                " keep external data beside the model"
            )
        if location not in locations:
            locations.append(location)
    return locations


def _all_tensors(proto: Any) -> Iterator[Any]:
    """Every initializer, in the main graph and in subgraphs (If, Loop, Scan bodies)."""
    import onnx

    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def write_readme(ctx: BuildContext, runtime: str, snippet: Sequence[str]) -> None:
    """Write the package README: inputs and outputs, pre/post-processing, a usage snippet, notes."""
    io_lines = [
        f"- input `{s.name}`: {s.dtype} [{', '.join(d.name or str(d.size) for d in s.dims)}]" for s in ctx.specs
    ] + [f"- output `{n}`" for n in ctx.output_names]
    task = TaskInfo.from_dict(ctx.task)
    pre = []
    if ctx.task:
        pre.append(f"- task: {task.kind or '?'}" + (f", x{task.scale}" if task.scale is not None else ""))
        if task.colour:
            pre.append(f"- pixels: {task.colour}")
        if task.input_layout:
            pre.append(f"- layout: in {task.input_layout}, out {task.output_layout or '?'}")
    text = "\n".join(
        [
            f"# {runtime} package",
            "",
            "Made by `ferry package`. `manifest.json` lists the inputs, outputs, pre/post-processing and",
            "the hash of every file.",
            "",
            "## Inputs and outputs",
            *io_lines,
            "(named dims are dynamic)",
            *(["", "## Pre/post-processing", *pre] if pre else []),
            "",
            "## Use",
            "```",
            *snippet,
            "```",
            *(["", "## Notes", *[f"- {n}" for n in ctx.notes]] if ctx.notes else []),
            "",
        ]
    )
    (ctx.folder / "README.md").write_text(text)
