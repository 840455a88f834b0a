"""``ferry serve``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ferry.cli._options import ArgOpt, InputOpt, WeightsOpt, specs_from
from ferry.cli._render import console, err_console
from ferry.errors import UserError

if TYPE_CHECKING:
    from ferry.serve import ServeConfig


def serve_cmd(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL|FILE",
            help="zoo:NAME, file.py:Attr, package.module:Attr, or an .onnx file (or --repository).",
            show_default=False,
        ),
    ] = None,
    repository: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Serve every model of a Triton model repository (ferry package --target triton)."
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="auto (the model's task chooses: super-resolution measures the fastest fp32 runtime once),"
            " onnxruntime, openvino, ...",
        ),
    ] = "auto",
    name: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Model name in URLs (default: the zoo name or the file's stem).", show_default=False
        ),
    ] = None,
    host: Annotated[str, typer.Option(metavar="ADDR", help="Address to listen on (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(metavar="N", help="Port (0: a free one).")] = 8000,
    max_batch: Annotated[
        int, typer.Option(metavar="N", help="Most requests' rows run in one call (1: no batching).")
    ] = 8,
    batch_timeout_ms: Annotated[
        float,
        typer.Option(
            metavar="MS", help="Longest wait for others to join a batch (0: batch what queued while the runtime ran)."
        ),
    ] = 0.0,
    max_queue: Annotated[int, typer.Option(metavar="N", help="Most requests waiting; more get 503.")] = 64,
    max_body_mb: Annotated[float, typer.Option(metavar="MB", help="Largest request body; larger get 413.")] = 64.0,
    max_pixels: Annotated[
        int, typer.Option(metavar="N", help="Largest image /upscale takes (width x height); larger get 413.")
    ] = 16_000_000,
    timeout: Annotated[float, typer.Option(metavar="S", help="Longest a request may wait and run; then 504.")] = 60.0,
    threads: Annotated[int, typer.Option(metavar="N", help="Runtime threads (0: default).")] = 0,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="warning, info (every request), debug.")] = "warning",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Serve as a Ray Serve deployment (pip install 'ferry[ray]'), Ray Serve's proxy on the head node at"
            " --host/--port: local (start Ray here), auto (RAY_ADDRESS or the cluster on this machine), HOST:PORT or"
            " ray://HOST:PORT. Model files must be at the same path on every node.",
            show_default=False,
        ),
    ] = None,
    replicas: Annotated[
        int, typer.Option(metavar="N", help="With --ray: copies of the server, each of --threads CPUs (default 1).")
    ] = 1,
    input: InputOpt = None,
    arg: ArgOpt = None,
    weights: WeightsOpt = None,
) -> None:
    """Serve a model over HTTP on the Open Inference Protocol (KServe v2, Triton's REST API), with dynamic
    batching and /metrics; super-resolution models also get POST /upscale and a page at /. Stops on Ctrl-C or
    SIGTERM once the requests in flight are answered."""
    from ferry.serve import ServeConfig, serve
    from ferry.specs import parse_kwargs

    if max_body_mb <= 0:
        raise UserError("--max-body-mb must be positive")
    cfg = ServeConfig(
        host=host,
        port=port,
        backend=backend,
        name=name,
        max_batch=max_batch,
        batch_timeout_ms=batch_timeout_ms,
        max_queue=max_queue,
        max_body_bytes=int(max_body_mb * (1 << 20)),
        max_pixels=max_pixels,
        timeout_s=timeout,
        threads=threads,
        log_level=log_level,
    )

    def on_status(text: str) -> None:
        err_console.print(f"[dim]{escape(text)}[/dim]")

    if ray is not None:
        _serve_on_ray(model, cfg, repository, ray, replicas, input, arg, weights, on_status)
        return
    if replicas != 1:
        raise UserError("--replicas needs --ray: one ferry serve is one process")
    server = serve(
        model,
        cfg,
        repository=repository,
        inputs=specs_from(input),
        args=parse_kwargs(arg or []),
        weights=weights,
        on_status=on_status,
    )
    for served in server.models.values():
        batching = f"batches of up to {served.batcher.max_batch}" if served.batcher.max_batch > 1 else "no batching"
        console.print(f"{escape(served.name)}: {escape(served.source)} on {served.backend}, {batching}", soft_wrap=True)
        urls = [f"/v2/models/{served.name}/infer", *sorted(served.endpoints)]
        for path in urls:
            console.print(f"  {escape(server.url + path)}", soft_wrap=True)
    console.print(f"metrics: {server.url}/metrics; Ctrl-C or SIGTERM stops (requests in flight finish)", soft_wrap=True)
    server.run()


def _serve_on_ray(
    model: str | None,
    cfg: ServeConfig,
    repository: Path | None,
    address: str,
    replicas: int,
    input: list[str] | None,
    arg: list[str] | None,
    weights: Path | None,
    on_status: Callable[[str], None],
) -> None:
    """``ferry serve --ray``: deploy, print where it answers, serve until Ctrl-C or SIGTERM."""
    from ferry.serve._ray import serve_on_ray
    from ferry.specs import parse_kwargs

    server = serve_on_ray(
        model,
        cfg,
        address=address,
        replicas=replicas,
        repository=repository,
        inputs=specs_from(input),
        args=parse_kwargs(arg or []),
        weights=weights,
    )
    server.start(on_status)
    for served in server.models.values():
        batching = f"batches of up to {served.max_batch}" if served.max_batch > 1 else "no batching"
        console.print(
            f"{escape(served.name)}: {escape(served.source)} on {served.backend}, {batching},"
            f" {replicas} Ray Serve replica(s)",
            soft_wrap=True,
        )
        for path in [f"/v2/models/{served.name}/infer", *served.endpoints]:
            console.print(f"  {escape(server.url + path)}", soft_wrap=True)
    console.print(
        f"metrics: {server.url}/metrics (of the replica that answers); Ctrl-C or SIGTERM deletes the deployment"
        " (requests in flight finish)",
        soft_wrap=True,
    )
    server.run()
