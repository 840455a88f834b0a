"""``ferry serve ... --ray ADDRESS --replicas N``: the application of ``ferry serve`` as a Ray Serve
deployment of N replicas, on this machine or across a cluster.

Each replica opens the models as ``ferry serve`` opens them (the same backends, batching queue,
limits and task endpoints such as ``/upscale``) and serves the same Starlette application; Ray
Serve's proxy on the head node listens on ``--host``/``--port`` and spreads the requests over the
replicas. Model files and repositories must be at the same path on every node (zoo models always
are). ``/metrics`` answers for the replica that took the request.

Ray is optional: ``pip install 'ferry[ray]'``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry._ray import check_address, cluster_cpus, connected, error_in_text, quieter, require
from ferry.errors import UserError, first_line
from ferry.serve import ModelOptions, ServeConfig, ServedModel, _check

if TYPE_CHECKING:
    from ferry.specs import InputSpec
    from ferry.subject import ModelSource

#: the Ray Serve application's name on the cluster
APP_NAME = "ferry"


@dataclass(frozen=True)
class RayModel:
    """A model as the replicas serve it (what the first replica to answer reported)."""

    name: str
    source: str
    backend: str
    max_batch: int
    endpoints: tuple[str, ...]


def serve_on_ray(
    model: ModelSource | None = None,
    config: ServeConfig | None = None,
    *,
    address: str = "local",
    replicas: int = 1,
    repository: str | os.PathLike[str] | None = None,
    inputs: Sequence[InputSpec] | None = None,
    args: dict[str, Any] | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> RayServer:
    """The server of :func:`ferry.serve.serve` as a Ray Serve deployment of ``replicas`` replicas;
    nothing runs until ``run()`` or ``start()``.

    Args:
        model: ``zoo:NAME``, ``file.py:Attr``, an ``.onnx`` file... (at the same path on every node).
        config: as for :func:`ferry.serve.serve`; ``host`` and ``port`` are where Ray Serve's proxy
            listens, on the head node; ``threads`` is the CPUs each replica reserves (0: 1).
        address: ``local`` (a Ray instance started here), ``auto`` (``RAY_ADDRESS`` or the cluster
            running on this machine), ``HOST:PORT`` of a head node or ``ray://HOST:PORT``.
        replicas: copies of the application, each with its own runtime sessions.
        repository: a Triton model repository instead of ``model``.
        inputs: input specs to export a model source with.
        args: constructor keyword arguments of a model source.
        weights: a state dict to load into a model source.

    Example:
        >>> with ferry.serve_on_ray("zoo:superres", ServeConfig(port=8000), address="auto", replicas=2) as server:
        ...     print(server.url)  # POST {url}/v2/models/superres/infer, {url}/upscale

    Raises:
        MissingDependencyError: ray or the serve extra is not installed.
        UserError: a bad model, limit, address or replica count.
    """
    cfg = config or ServeConfig()
    _check(cfg, model, repository)
    require("serve")
    check_address(address)
    if replicas < 1:
        raise UserError(f"--replicas must be at least 1, got {replicas}")
    if cfg.port == 0:
        raise UserError("--port 0 does not work with --ray: Ray Serve's proxy needs a port known in advance")
    if repository is not None:
        from ferry.serve._repository import read_repository

        read_repository(repository)  # a bad repository fails here, not in every replica
    return RayServer(model, ModelOptions(inputs, args, weights), cfg, repository, address, replicas)


class RayServer:
    """A Ray Serve deployment of ferry's server: ``run()`` in the foreground until Ctrl-C or
    SIGTERM, or ``start()``/``stop()`` (a context manager).

    Attributes:
        url: where Ray Serve's proxy listens (on the head node).
        models: the served models by name, once started.
    """

    def __init__(
        self,
        model: ModelSource | None,
        options: ModelOptions,
        config: ServeConfig,
        repository: str | os.PathLike[str] | None,
        address: str,
        replicas: int,
    ) -> None:
        self.config = config
        self.address = address
        self.replicas = replicas
        self._args = (model, options, config, os.fspath(repository) if repository is not None else None)
        host = config.host
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{config.port}"
        self.models: dict[str, RayModel] = {}
        self._session: contextlib.ExitStack | None = None
        self._deployed = False  # the application on the cluster is this server's: stop() deletes it

    def start(self, on_status: Callable[[str], None] | None = None) -> RayServer:
        """Deploy the replicas and return once every one answers."""
        if self._session is not None:
            return self
        self._session = contextlib.ExitStack()
        try:
            self._session.enter_context(quieter({"ray.serve": logging.WARNING}))
            self._session.enter_context(connected(self.address))
            self._deploy(on_status)
        except BaseException:
            self.stop()
            raise
        return self

    def _deploy(self, on_status: Callable[[str], None] | None) -> None:
        from ray import serve

        cpus = max(1, self.config.threads)
        available = cluster_cpus()
        if self.replicas * cpus > available:
            raise UserError(
                f"the Ray cluster has {available:g} CPUs, not enough for {self.replicas} replica(s) of {cpus} (--threads)"
            )
        _start_serve(self.config.host, self.config.port)
        if APP_NAME in serve.status().applications:  # deploying again would replace it, stopping would end it
            raise UserError(
                f"a ferry serve --ray already runs on this cluster (Ray Serve application {APP_NAME!r}):"
                " stop it first (Ctrl-C where it runs, or `serve shutdown`)"
            )
        deployment = serve.deployment(
            name="ferry",
            num_replicas=self.replicas,
            ray_actor_options={"num_cpus": cpus},
            # the replica's own queue bounds the waiting requests (503 past --max-queue) and batches them
            max_ongoing_requests=self.config.max_queue + self.config.max_batch,
            graceful_shutdown_timeout_s=self.config.timeout_s + 5,
            max_constructor_retry_count=1,  # opening a model fails the same way every time
        )(serve.ingress(_ReplicaApp())(_Replica))
        if on_status is not None:
            on_status(f"deploying {self.replicas} replica(s) of {cpus} CPU(s) on Ray at {self.address}")
        self._deployed = True
        try:
            handle = serve.run(deployment.bind(*self._args), name=APP_NAME, route_prefix="/")
        except RuntimeError as exc:  # a replica's constructor failed: its error, not Ray's report of it
            raise UserError(f"the replicas could not start: {_replica_error(exc)}") from None
        self.models = {m.name: m for m in handle.describe.remote().result()}

    def run(self, on_status: Callable[[str], None] | None = None) -> None:
        """Serve until SIGTERM or Ctrl-C (from the main thread), then delete the deployment: its
        replicas answer the requests they hold first."""
        self.start(on_status)
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def stop(self) -> None:
        """Delete the deployment (its replicas answer the requests they hold first) and disconnect.

        Ray Serve itself (its proxy on the port) stays on a cluster given by address, as Ray Serve
        does, for the next deployment; ``local`` stops with this process.
        """
        if self._session is None:
            return
        try:
            import ray

            if self._deployed and ray.is_initialized():
                from ray import serve

                serve.delete(APP_NAME)
        finally:
            self._deployed = False
            session, self._session = self._session, None
            session.close()

    def __enter__(self) -> RayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start_serve(host: str, port: int) -> None:
    """Start Ray Serve's proxy on the head node at ``host:port``, or check that the Ray Serve
    already running on the cluster listens there (its HTTP options cannot change)."""
    from ray import serve
    from ray.serve.context import _get_global_client

    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    client = _get_global_client()
    assert client is not None  # serve.start connected it
    http = client.http_config
    if (http.host, http.port) != (host, port):
        raise UserError(
            f"Ray Serve already runs on this cluster, listening on {http.host}:{http.port}: give --host {http.host}"
            f" --port {http.port}, or stop it first (`serve shutdown`)"
        )


def _replica_error(exc: BaseException) -> str:
    """The error a replica's constructor raised, from Ray Serve's status (which holds its traceback)."""
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    texts = [d.message for d in app.deployments.values()] + [app.message] if app is not None else []
    for text in [*texts, str(exc)]:
        found = error_in_text(text or "")
        if found is not None:
            return str(found)
    return first_line(exc)


#: the application this process's replica serves (a Ray Serve replica is a process of its own)
_BUILT: list[Any] = []


class _ReplicaApp:
    """The ASGI application Ray Serve is given: it hands every call (the lifespan's too) to the
    application this process's replica built in its constructor. (Ray Serve takes the ASGI app when
    the deployment is declared; the models can only be opened in the replica.)"""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await _BUILT[0](scope, receive, send)


class _Replica:
    """One Ray Serve replica: the models opened as ``ferry serve`` opens them, behind its application."""

    def __init__(
        self,
        model: ModelSource | None,
        options: ModelOptions,
        config: ServeConfig,
        repository: str | None,
    ) -> None:
        from ferry.serve import application, open_models
        from ferry.serve._metrics import Metrics

        metrics = Metrics()
        self.models: dict[str, ServedModel] = open_models(model, options, config, metrics, repository, None)
        _BUILT[:] = [application(self.models, config, metrics)]

    def describe(self) -> list[RayModel]:
        return [
            RayModel(m.name, m.source, m.backend, m.batcher.max_batch, tuple(sorted(m.endpoints)))
            for m in self.models.values()
        ]
