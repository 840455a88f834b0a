"""The ASGI application: the inference protocol's routes, a task's own endpoints, ``/metrics``.

Every route goes through :func:`_answer`, the one place where a :class:`ProtocolError` becomes the
protocol's error JSON, a client that went away is let go, and the metrics are counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ferry._version import __version__
from ferry.errors import UserError
from ferry.serve import _protocol
from ferry.serve._protocol import HEADER_LENGTH, ProtocolError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ferry.serve import Endpoint, ServeConfig, ServedModel
    from ferry.serve._metrics import Metrics

Handler = Callable[["Request"], Awaitable["Response"]]
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]"}
_log = logging.getLogger("ferry.serve")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    from starlette.responses import Response

    return Response(json.dumps(data), status, dict(headers or {}), media_type="application/json")


def error_response(exc: ProtocolError) -> Response:
    from starlette.responses import Response

    return Response(_protocol.error_body(exc.message), exc.status, exc.headers, media_type="application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 past ``limit`` bytes (before reading, when the client
    announced its length), and decompressed when the client sent gzip or deflate."""
    length = request.headers.get("content-length", "")
    too_large = f"the request body is larger than {limit} bytes (--max-body-mb)"
    if length.isdigit() and int(length) > limit:
        raise ProtocolError(413, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, too_large)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding in ("gzip", "deflate"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            body = inflate.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ProtocolError(400, f"the body is not valid {encoding}: {exc}") from None
        if len(body) > limit or inflate.unconsumed_tail:
            raise ProtocolError(413, too_large + " once decompressed")
    elif encoding != "identity":
        raise ProtocolError(400, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    return body


class App:
    """The served models behind the routes."""

    def __init__(self, models: Mapping[str, ServedModel], config: ServeConfig, metrics: Metrics) -> None:
        self.models = dict(models)
        self.config = config
        self.metrics = metrics
        self.ready = False

    def model(self, request: Request) -> ServedModel:
        name = request.path_params["name"]
        served = self.models.get(name)
        if served is None:
            raise ProtocolError(404, f"unknown model {name!r}; this server has {', '.join(self.models)}")
        version = request.path_params.get("version")
        if version not in (None, "", served.version):
            raise ProtocolError(404, f"model {name!r} has no version {version!r}; it serves version {served.version}")
        return served

    def _only_model(self) -> str:
        return next(iter(self.models)) if len(self.models) == 1 else ""

    async def answer(self, endpoint: str, request: Request, handler: Handler) -> Response:
        from starlette.requests import ClientDisconnect
        from starlette.responses import Response

        start = time.perf_counter()
        named = request.path_params.get("name") or request.query_params.get("model") or self._only_model()
        model = named if named in self.models else ""  # a metric label: never what a client made up
        try:
            response = await handler(request)
        except ProtocolError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            response = Response(status_code=499)  # nobody reads it; counted as nginx does
        except Exception as exc:  # a bug: logged with its traceback, answered in the protocol's form
            _log.exception("%s failed", endpoint)
            response = error_response(ProtocolError(500, f"internal error: {type(exc).__name__}: {exc}"))
        self.metrics.observe_request(endpoint, model, response.status_code, time.perf_counter() - start)
        return response

    # -- the inference protocol -----------------------------------------------------------------

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": "ferry", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def server_ready(self, request: Request) -> Response:
        if not self.ready:
            raise ProtocolError(503, "the server is starting or stopping")
        return json_response({"ready": True})

    async def model_metadata(self, request: Request) -> Response:
        return json_response(self.model(request).metadata())

    async def model_ready(self, request: Request) -> Response:
        self.model(request)
        if not self.ready:
            raise ProtocolError(503, "the model is not ready")
        return json_response({"ready": True})

    async def model_config(self, request: Request) -> Response:
        return json_response(self.model(request).triton_config())

    async def infer(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        served = self.model(request)
        body = await read_body(request, self.config.max_body_bytes)
        session = served.session
        decoded = await run_in_threadpool(
            _protocol.decode, body, request.headers.get(HEADER_LENGTH), session.inputs, served.outputs
        )
        try:
            session.check_feeds(decoded.inputs)
        except UserError as exc:
            raise ProtocolError(400, str(exc)) from None
        timeout = self.config.timeout_s
        asked = decoded.parameters.get("timeout")
        if isinstance(asked, int) and asked > 0:  # the protocol's per-request timeout, in microseconds
            timeout = min(timeout, asked / 1e6)
        outputs = await served.batcher.infer(decoded.inputs, timeout)
        payload, header = await run_in_threadpool(_protocol.encode, served.name, served.version, decoded, outputs)
        if header is None:
            return Response(payload, media_type="application/json")
        return Response(payload, headers={HEADER_LENGTH: str(header)}, media_type="application/octet-stream")

    async def metrics_text(self, request: Request) -> Response:
        from starlette.responses import Response

        for served in self.models.values():
            self.metrics.queue.labels(served.name).set(served.batcher.depth)
        text, content_type = self.metrics.text()
        return Response(text, headers={"Content-Type": content_type})

    async def index(self, request: Request) -> Response:
        return json_response(
            {
                "server": f"ferry {__version__}",
                "protocol": "Open Inference Protocol v2 (REST), binary tensor data extension",
                "models": {n: f"/v2/models/{n}" for n in self.models},
                "endpoints": sorted({p for m in self.models.values() for p in m.endpoints}),
                "metrics": "/metrics",
            }
        )


def _task_route(app: App, path: str, owners: dict[str, Endpoint]) -> Handler:
    """One task path served by several models: ``?model=NAME`` picks one, else the only one."""

    async def handle(request: Request) -> Response:
        wanted = request.query_params.get("model")
        if wanted is None and len(owners) == 1:
            wanted = next(iter(owners))
        if wanted not in owners:
            raise ProtocolError(
                404 if wanted else 400,
                f"{path} is served by {', '.join(owners)}; add ?model=NAME"
                + (f" (no model {wanted!r} has it)" if wanted else ""),
            )
        return await owners[wanted].handler(request)

    return handle


def build(models: Mapping[str, ServedModel], config: ServeConfig, metrics: Metrics) -> tuple[Starlette, App]:
    """The Starlette application serving ``models``."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    app = App(models, config, metrics)

    def route(path: str, endpoint: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> list[Route]:
        async def answer(request: Request) -> Response:
            return await app.answer(endpoint, request, handler)

        paths = [path]
        if path.startswith("/v2/models/{name}"):
            paths.append(path.replace("{name}", "{name}/versions/{version}", 1))
        return [Route(p, answer, methods=list(methods)) for p in paths]

    routes = [
        *route("/v2", "server_metadata", app.server_metadata),
        *route("/v2/health/live", "live", app.live),
        *route("/v2/health/ready", "ready", app.server_ready),
        *route("/v2/models/{name}", "model_metadata", app.model_metadata),
        *route("/v2/models/{name}/ready", "model_ready", app.model_ready),
        *route("/v2/models/{name}/config", "model_config", app.model_config),
        *route("/v2/models/{name}/infer", "infer", app.infer, ("POST",)),
        *route("/metrics", "metrics", app.metrics_text),
    ]
    owners: dict[str, dict[str, Endpoint]] = {}
    for served in models.values():
        for path, endpoint in served.endpoints.items():
            owners.setdefault(path, {})[served.name] = endpoint
    for path, by_model in owners.items():
        methods = tuple(sorted({m for e in by_model.values() for m in e.methods}))
        routes += route(path, path.strip("/") or "page", _task_route(app, path, by_model), methods)
    if "/" not in owners:
        routes += route("/", "index", app.index)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for served in models.values():
            await served.batcher.start()
        app.ready = True
        try:
            yield
        finally:
            app.ready = False
            for served in models.values():
                await served.batcher.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = "method not allowed" if status == 405 else f"no endpoint {request.url.path}"
        return error_response(ProtocolError(status, message))

    starlette = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    return starlette, app


def guard_host(asgi: Any, allowed: set[str]) -> Any:
    """Refuse requests whose ``Host`` is not this loopback server (a page that rebinds its DNS name
    to 127.0.0.1 still sends its own name)."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            hosts = [v.decode("latin-1").strip().lower() for k, v in scope["headers"] if k == b"host"]
            if len(hosts) != 1 or _host_name(hosts[0]) not in allowed:
                body = _protocol.error_body("forbidden: this server answers only to 127.0.0.1 and localhost")
                await send({"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return
        await asgi(scope, receive, send)

    return guarded


def _host_name(host: str) -> str:
    """``127.0.0.1:8000`` -> ``127.0.0.1``; ``[::1]:8000`` -> ``[::1]``."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.split(":", 1)[0]


def loopback_names() -> set[str]:
    return set(_LOOPBACK_NAMES)
