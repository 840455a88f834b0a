"""A ``ferry serve`` of zoo:superres in this process (uvicorn in a thread, a free port on
127.0.0.1), shared by the tests of a module; tritonclient talks to it as it would to Triton."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'ferry[serve]'")
pytest.importorskip("tritonclient.http", reason="tritonclient is not installed: pip install 'ferry[dev]'")

from ferry.serve import ServeConfig, Server, serve


@pytest.fixture(scope="session")
def superres_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zoo:superres as ferry serve and ferry upscale open it (ferry's cache of exports)."""
    from ferry.cache import cached_export
    from ferry.models import load_model

    return cached_export(load_model("zoo:superres"))


def start(model: str | Path | None = "zoo:superres", *, repository: Path | None = None, **options: object) -> Server:
    """A started server on a free port (stop it, or use it as a context manager)."""
    cfg = ServeConfig(**{"port": 0, "backend": "onnxruntime", **options})  # type: ignore[arg-type]
    return serve(model, cfg, repository=repository).start()


@pytest.fixture(scope="module")
def server(superres_file: Path) -> Iterator[Server]:
    """zoo:superres on ONNX Runtime, batching up to 8 with a 20 ms window."""
    srv = start("zoo:superres", batch_timeout_ms=20.0)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> object:
    import tritonclient.http as httpclient

    return httpclient.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=60.0)


def metric(server: Server, name: str, labels: str = "") -> float:
    """The sum of a metric's samples (those whose labels contain ``labels``) on ``/metrics``."""
    text = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    pattern = re.escape(name) + (r"\{[^}]*" + re.escape(labels) + r"[^}]*\}" if labels else r"(?:\{[^}]*\})?")
    return sum(float(m.group("value")) for m in re.finditer(f"^{pattern} (?P<value>\\S+)$", text, flags=re.M))
