"""``ferry serve``: a model behind HTTP, on the Open Inference Protocol (KServe "v2", Triton's).

:func:`serve` opens the model on a backend (the same ones verify and bench use), binds the port
and returns a :class:`Server`; ``run()`` serves in the foreground until SIGTERM or Ctrl-C (requests
in flight finish first), ``start()`` in a background thread. Concurrent requests of one shape are
batched (:mod:`ferry.serve._batching`); the queue, the body size and the time per request are
bounded; ``/metrics`` speaks Prometheus. An application adds its own endpoints through its task's
``serve_endpoints`` hook (super-resolution: ``POST /upscale`` and a page at ``/``).

Starlette, uvicorn and prometheus_client come with ``pip install 'ferry[serve]'``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.errors import MissingDependencyError, UserError
from ferry.serve._protocol import ProtocolError, datatype, wire_shape

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ferry.backends.base import Session
    from ferry.serve._batching import Batcher
    from ferry.serve._repository import RepositoryModel
    from ferry.specs import InputSpec, TensorInfo
    from ferry.subject import ModelSource, Subject
    from ferry.tasks import TaskInfo

SERVE_HINT = "ferry serve needs starlette, uvicorn and prometheus_client: pip install 'ferry[serve]'"


@dataclass(frozen=True)
class ServeConfig:
    """How to serve.

    Attributes:
        host: address to listen on; 127.0.0.1 (this machine only) unless you mean otherwise.
        port: TCP port; 0 picks a free one.
        backend: ``auto`` (the model's task chooses, else ONNX Runtime) or a backend name.
        name: the model's name in URLs (default: the zoo name, or the file's stem).
        max_batch: most rows run together in one call (1: no dynamic batching).
        batch_timeout_ms: longest wait for other requests to join a batch (0: a batch is what
            queued while the runtime was busy; no request waits for others).
        max_queue: most requests waiting to run; more get 503.
        max_body_bytes: largest request body; larger ones get 413.
        max_pixels: largest image an application endpoint takes (width x height); larger get 413.
        timeout_s: longest time a request may wait and run; then 504.
        threads: runtime threads (0: the runtime's default).
        log_level: uvicorn's log level (``warning``, ``info`` shows every request).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "auto"
    name: str | None = None
    max_batch: int = 8
    batch_timeout_ms: float = 0.0
    max_queue: int = 64
    max_body_bytes: int = 64 << 20
    max_pixels: int = 16_000_000
    timeout_s: float = 60.0
    threads: int = 0
    log_level: str = "warning"


@dataclass(frozen=True)
class Endpoint:
    """An application's HTTP endpoint: its methods and an async handler (a Starlette request in,
    a response out; raise :class:`ProtocolError` for an error reply)."""

    methods: tuple[str, ...]
    handler: Callable[[Request], Awaitable[Response]]


@dataclass
class ServeContext:
    """What a task's ``serve_endpoints`` hook gets: the model, the limits, and the batched runtime.

    Attributes:
        name: the model's name on this server.
        info: its task metadata.
        inputs: the session's inputs (names, dtypes, shapes).
        outputs: the graph's outputs.
        config: the server's limits (``max_body_bytes``, ``max_pixels``, ``timeout_s``).
        infer: runs named inputs through the batching queue and returns named outputs.
    """

    name: str
    info: TaskInfo
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    config: ServeConfig
    infer: Callable[[dict[str, np.ndarray]], Awaitable[dict[str, np.ndarray]]]

    async def read_body(self, request: Request) -> bytes:
        """The request's body; 413 past ``config.max_body_bytes``."""
        from ferry.serve._app import read_body

        return await read_body(request, self.config.max_body_bytes)


@dataclass
class ServedModel:
    """One model on the server: its session, batching queue, metadata and task endpoints."""

    name: str
    version: str
    source: str
    backend: str
    session: Session
    outputs: tuple[TensorInfo, ...]
    batcher: Batcher
    max_batch_size: int
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The protocol's model metadata: names, datatypes and shapes (-1 for dynamic dims)."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": [
                {"name": i.name, "datatype": datatype(i.dtype), "shape": wire_shape(i.shape)}
                for i in self.session.inputs
            ],
            "outputs": [
                {"name": o.name, "datatype": datatype(o.dtype), "shape": wire_shape(o.shape)} for o in self.outputs
            ],
        }

    def triton_config(self) -> dict[str, Any]:
        """The model's configuration as Triton's ``/config`` returns it (JSON of ``ModelConfig``)."""
        batched = self.max_batch_size > 0

        def tensor(t: TensorInfo) -> dict[str, Any]:
            return {"name": t.name, "data_type": f"TYPE_{datatype(t.dtype)}", "dims": wire_shape(t.shape[batched:])}

        config: dict[str, Any] = {
            "name": self.name,
            "backend": "onnxruntime",
            "max_batch_size": self.max_batch_size,
            "input": [tensor(i) for i in self.session.inputs],
            "output": [tensor(o) for o in self.outputs],
        }
        if self.batcher.max_batch > 1:
            config["dynamic_batching"] = {"max_queue_delay_microseconds": int(self.batcher.timeout_s * 1e6)}
        return config


class Server:
    """A bound server: ``run()`` in the foreground, or ``start()``/``stop()`` (a context manager)
    in a background thread.

    Attributes:
        url: ``http://HOST:PORT``.
        models: the served models by name.
    """

    def __init__(self, asgi: Any, sock: socket.socket, config: ServeConfig, models: dict[str, ServedModel]) -> None:
        import uvicorn

        self.models = models
        self.config = config
        self._socket = sock
        host, self.port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                asgi,
                log_level=config.log_level,
                access_log=config.log_level in ("debug", "trace", "info"),
                timeout_graceful_shutdown=int(config.timeout_s) + 5,
                lifespan="on",
            )
        )
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGTERM or Ctrl-C (from the main thread) or :meth:`stop`; requests in flight
        finish before it returns."""
        self._uvicorn.run(sockets=[self._socket])

    def start(self, timeout_s: float = 30.0) -> Server:
        """Serve from a background thread; returns once the server answers."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="ferry-serve", daemon=True)
            self._thread.start()
            deadline = time.monotonic() + timeout_s
            while not self._uvicorn.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise UserError(f"the server did not start within {timeout_s:g} s")
                time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests finish), close the sessions and free the port."""
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.config.timeout_s + 10)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ModelOptions:
    """How to build a model given as a source: input specs, constructor arguments, weights."""

    inputs: Sequence[InputSpec] | None = None
    args: Mapping[str, Any] | None = None
    weights: str | os.PathLike[str] | None = None


def serve(
    model: ModelSource | None = None,
    config: ServeConfig | None = None,
    *,
    repository: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] | None = None,
    args: Mapping[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> Server:
    """Open a model (or every model of a Triton repository) and bind the server; nothing is
    served until ``run()`` or ``start()``.

    Args:
        model: ``zoo:NAME``, ``file.py:Attr``, an ``.onnx`` file...
        config: host, port, backend, batching and limits.
        repository: a Triton model repository (``ferry package --target triton``) instead of ``model``.
        inputs: input specs to export a model source with (default: the model's declared ones).
        args: constructor keyword arguments of a model source.
        weights: a state dict to load into a model source.
        on_status: called with a line when something slow starts (a runtime measurement).

    Example:
        >>> with ferry.serve("zoo:superres", ServeConfig(port=0)) as server:
        ...     print(server.url)  # POST {url}/v2/models/superres/infer, {url}/upscale

    Raises:
        UserError: a bad model or limit, a busy port.
        MissingDependencyError: the serve extra is not installed.
    """
    cfg = config or ServeConfig()
    _check(cfg, model, repository)
    from ferry.serve._metrics import Metrics

    metrics = Metrics()
    served = open_models(model, ModelOptions(inputs, args, weights), cfg, metrics, repository, on_status)
    return _bind(served, cfg, metrics)


def open_models(
    model: ModelSource | None,
    source: ModelOptions,
    cfg: ServeConfig,
    metrics: Any,
    repository: str | os.PathLike[str] | None,
    on_status: Callable[[str], None] | None,
) -> dict[str, ServedModel]:
    """The models a server serves, by name, opened on their runtimes: ``model``, or every model
    of ``repository``."""
    if repository is not None:
        from ferry.serve._repository import read_repository

        models = [_open_repository_model(m, cfg, metrics, on_status) for m in read_repository(repository)]
    else:
        assert model is not None
        models = [_open_model(model, source, cfg, metrics, on_status)]
    return {m.name: m for m in models}


def _check(cfg: ServeConfig, model: object, repository: object) -> None:
    from ferry.registry import importable

    missing = [m for m in ("starlette", "uvicorn", "prometheus_client") if not importable(m)]
    if missing:
        raise MissingDependencyError(SERVE_HINT)
    if (model is None) == (repository is None):
        raise UserError("give a model (zoo:NAME, file.py:Attr, an .onnx file) or --repository DIR, not both")
    if cfg.max_batch < 1 or cfg.max_queue < 1 or cfg.max_body_bytes < 1 or cfg.max_pixels < 1:
        raise UserError("--max-batch, --max-queue, --max-body-mb and --max-pixels must be at least 1")
    if cfg.batch_timeout_ms < 0 or cfg.timeout_s <= 0:
        raise UserError("--batch-timeout-ms must not be negative and --timeout must be positive")
    if cfg.name is not None and not _NAME.fullmatch(cfg.name):
        raise UserError(f"--name {cfg.name!r}: use letters, digits, '.', '_' and '-'")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def default_name(source: str) -> str:
    """A model's name in URLs: ``zoo:superres`` -> ``superres``, ``models/sr.onnx`` -> ``sr``,
    ``net.py:Upscaler`` -> ``Upscaler``."""
    if source.startswith("zoo:"):
        text = source[4:]
    elif source.lower().endswith(".onnx") or ":" not in source:
        text = Path(source).stem
    else:
        text = source.rsplit(":", 1)[1]
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return text or "model"


def _resolve(model: ModelSource, source: ModelOptions, work_dir: str) -> Subject:
    """The model's Subject; a model source with declared inputs is exported once into ferry's cache."""
    from ferry import subject
    from ferry.cache import cached_export

    if subject.is_onnx_file(model):
        return subject.resolve(model)
    loaded = subject.load(model, args=source.args, weights=source.weights)
    if source.inputs or not loaded.inputs:
        return subject.resolve(loaded, inputs=source.inputs, work_dir=work_dir)
    return subject.resolve(loaded, onnx=cached_export(loaded))


def _open_model(
    model: ModelSource,
    source: ModelOptions,
    cfg: ServeConfig,
    metrics: Any,
    on_status: Callable[[str], None] | None,
) -> ServedModel:
    import tempfile

    # an export made here is needed only until the runtime has loaded it
    with tempfile.TemporaryDirectory(prefix="ferry-serve-") as work_dir:
        subj = _resolve(model, source, work_dir)
        name = cfg.name or default_name(os.fspath(model) if isinstance(model, (str, os.PathLike)) else subj.source)
        return _served(subj, name, "1", cfg, metrics, on_status, cfg.max_batch, cfg.batch_timeout_ms / 1e3)


def _open_repository_model(
    entry: RepositoryModel, cfg: ServeConfig, metrics: Any, on_status: Callable[[str], None] | None
) -> ServedModel:
    from ferry import subject

    max_batch = min(cfg.max_batch, entry.max_batch_size) if entry.dynamic_batching else 1
    delay_s = entry.max_queue_delay_us / 1e6 if entry.max_queue_delay_us is not None else cfg.batch_timeout_ms / 1e3
    subj = subject.resolve(entry.onnx_path)
    served = _served(subj, entry.name, entry.version, cfg, metrics, on_status, max_batch, delay_s)
    served.max_batch_size = entry.max_batch_size
    return served


def _backend_for(subj: Subject, cfg: ServeConfig, on_status: Callable[[str], None] | None) -> str:
    """``--backend`` as given, or for ``auto`` the model's task's choice, else ONNX Runtime."""
    if cfg.backend != "auto":
        return cfg.backend
    from ferry import onnx_file, tasks

    _, task = tasks.of(onnx_file.stored_task(subj.proto))
    if task is not None and task.serve_backend is not None:
        chosen = task.serve_backend(subj.onnx_path, cfg.threads, on_status)
        if chosen:
            return chosen
    return "onnxruntime"


def _batchable(inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo]) -> bool:
    """Every input and output has a dynamic first axis: requests can be stacked on it."""
    return bool(inputs) and all(t.shape and not isinstance(t.shape[0], int) for t in (*inputs, *outputs))


def _served(
    subj: Subject,
    name: str,
    version: str,
    cfg: ServeConfig,
    metrics: Any,
    on_status: Callable[[str], None] | None,
    max_batch: int,
    delay_s: float,
) -> ServedModel:
    from ferry import onnx_file, tasks
    from ferry.backends import REGISTRY
    from ferry.serve._batching import Batcher

    backend_name = _backend_for(subj, cfg, on_status)
    backend = REGISTRY.get(backend_name)
    backend.require()
    # The session is opened, run and closed on one thread (a browser-backed one is bound to it);
    # timing=True: no busy-waiting runtime threads, the server shares the machine with its clients.
    thread = ThreadPoolExecutor(1, thread_name_prefix=f"ferry-serve-{name}")
    session = thread.submit(backend.open, subj, threads=cfg.threads, timing=True).result()
    outputs = onnx_file.graph_io(subj.proto)[1]

    def run(feeds: dict[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        return session.run(feeds).outputs

    batcher = Batcher(
        run,
        max_batch=max_batch,
        timeout_s=delay_s,
        max_queue=cfg.max_queue,
        batchable=_batchable(session.inputs, outputs),
        on_batch=metrics.on_batch(name),
        on_queue=metrics.on_queue(name),
        executor=thread,
        on_close=session.close,
    )
    served = ServedModel(
        name, version, subj.source, backend_name, session, outputs, batcher, max_batch if batcher.max_batch > 1 else 0
    )
    info, task = tasks.of(onnx_file.stored_task(subj.proto))
    if task is not None and task.serve_endpoints is not None:

        async def infer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return await batcher.infer(feeds, cfg.timeout_s)

        context = ServeContext(name, info, session.inputs, outputs, cfg, infer)
        served.endpoints = dict(task.serve_endpoints(context) or {})
    return served


def _bind(models: dict[str, ServedModel], cfg: ServeConfig, metrics: Any) -> Server:
    """The listening socket and the server around the application."""
    try:
        addr = ipaddress.ip_address(cfg.host)
    except ValueError:
        addr = None
    family = socket.AF_INET6 if addr is not None and addr.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}; try another --port") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return Server(application(models, cfg, metrics), sock, cfg, models)


def application(models: dict[str, ServedModel], cfg: ServeConfig, metrics: Any) -> Any:
    """The ASGI application serving ``models``; on a loopback address it answers only requests
    addressed to this machine by name (a page that rebinds its DNS name to 127.0.0.1 cannot use it)."""
    from ferry.serve._app import build, guard_host, loopback_names

    try:
        addr = ipaddress.ip_address(cfg.host)
    except ValueError:
        addr = None
    asgi, _ = build(models, cfg, metrics)
    loopback = cfg.host in ("127.0.0.1", "localhost", "::1") or (addr is not None and addr.is_loopback)
    return guard_host(asgi, loopback_names()) if loopback else asgi


__all__ = ["Endpoint", "ProtocolError", "ServeConfig", "ServeContext", "ServedModel", "Server", "serve"]
