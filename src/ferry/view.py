"""Open an ONNX model in Netron, served on 127.0.0.1 only.

Netron's own server reads any file under the model's folder (``/data/<path>``, dotfiles too)
for any ``Host``. ferry serves Netron's page itself instead, through :class:`ferry._browser.LocalServer`:
Netron's static files, the model and the external data files the model names, each by its exact
name under a random path, and nothing else; requests not addressed to 127.0.0.1 or localhost are
refused.
"""

from __future__ import annotations

import html
import os
import posixpath
import re
import urllib.parse
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

from ferry import onnx_file
from ferry._browser import LocalServer
from ferry.errors import MissingDependencyError, UserError

#: Suffixes of Netron's static files (its page, scripts, metadata, styles, icons); never ``.py``.
_NETRON_ASSETS = frozenset({".html", ".js", ".css", ".json", ".png", ".gif", ".jpg", ".ico", ".svg", ".pb"})


@dataclass
class Viewer:
    """A running ``ferry view`` server.

    Attributes:
        url: the page to open (``http://127.0.0.1:PORT/<random>/``).
        model: the model file served.
        data_files: external data files served with it, by the location the model names.
    """

    url: str
    model: Path
    data_files: dict[str, Path] = field(default_factory=dict)
    _server: LocalServer | None = field(default=None, repr=False)

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on."""
        parsed = urllib.parse.urlsplit(self.url)
        return str(parsed.hostname), int(parsed.port or 80)

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": str(self.model),
            "data_files": {k: str(v) for k, v in self.data_files.items()},
        }


def view(path: str | os.PathLike[str], *, port: int = 8080, browse: bool = True) -> Viewer:
    """Serve ``path`` with Netron on ``127.0.0.1:port`` and return the running server.

    Only the model and the external data files it names (inside its folder) are served, under a
    random path; requests whose ``Host`` is not 127.0.0.1 or localhost get 403. The server runs in
    a background thread; call :meth:`Viewer.stop` (or use it as a context manager) to stop it.

    Args:
        path: the ONNX file.
        port: port on 127.0.0.1; 0 picks a free one.
        browse: open the page in the default web browser.

    Raises:
        UserError: the file is not an ONNX model, its external data lies outside its folder, or
            the port is out of range or in use.

    Example:
        >>> with ferry.view("sr.onnx", port=0, browse=False) as viewer:
        ...     print(viewer.url)
        http://127.0.0.1:43127/3q2x.../
    """
    model = Path(path)
    proto = onnx_file.load(model, load_external_data=False)
    try:
        import netron
    except ImportError as exc:
        raise MissingDependencyError("netron is not installed: pip install netron") from exc
    data_files = external_data_files(proto, model)
    server = LocalServer(_netron_site(netron, model, data_files), port=port).start()
    viewer = Viewer(server.url, model, data_files, server)
    if browse:
        webbrowser.open(viewer.url)
    return viewer


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def external_data_files(proto: onnx.ModelProto, model: str | os.PathLike[str]) -> dict[str, Path]:
    """The existing external data files a model names, by location (normalised, ``/``-separated).

    Raises:
        UserError: a location is absolute or leads outside the model's folder (symlinks followed).
    """
    folder = Path(os.path.realpath(Path(model).absolute().parent))
    found: dict[str, Path] = {}
    for tensor in _tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        name = posixpath.normpath(location.replace("\\", "/"))
        target = Path(os.path.realpath(folder / name))
        if not location or not target.is_relative_to(folder):
            raise UserError(
                f"{model}: external data {location!r} is outside the model's folder; only files beside the model are served"
            )
        if target.is_file():
            found[name] = target
    return found


def _netron_site(netron: ModuleType, model: Path, data_files: dict[str, Path]) -> dict[str, bytes | Path]:
    """Netron's page and static files, the model and its external data: every URL name served."""
    static = Path(netron.__file__ or "").resolve().parent
    files: dict[str, bytes | Path] = {
        p.name: p
        for p in sorted(static.iterdir())
        if p.suffix in _NETRON_ASSETS and not p.name.startswith(".") and not p.is_symlink() and p.is_file()
    }
    index = _netron_index(
        (static / "index.html").read_text(encoding="utf-8"), str(getattr(netron, "__version__", "")), model.name
    )
    files[""] = files["index.html"] = index
    files[f"data/{model.name}"] = model
    for name, target in data_files.items():
        files[f"data/{name}"] = target
    return files


def _netron_index(page: str, version: str, name: str) -> bytes:
    """Netron's index.html with the meta tags its Python server adds: the page then opens the model."""
    esc = html.escape
    meta = "\n".join(
        [
            '<meta name="type" content="Python">',
            f'<meta name="version" content="{esc(version)}">',
            f'<meta name="file" content="/data/{esc(urllib.parse.quote(name))}">',
            f'<meta name="name" content="{esc(name)}">',
            f'<meta name="identifier" content="{esc(name)}">',
        ]
    )
    text, count = re.subn(r'<meta name="version" content=".*">', lambda _: meta, page, count=1)
    if not count:
        text = page.replace("</head>", meta + "\n</head>", 1)
    return text.encode("utf-8")


__all__ = ["Viewer", "external_data_files", "view"]
