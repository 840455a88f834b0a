"""``ferry upscale DIR -o OUT --ray ADDRESS``: a folder upscaled by a pool of Ray actors, on this
machine or across a cluster.

A Ray Data pipeline: the files to do (``from_items``, one row each) go through ``map_batches`` on
an actor pool; each actor holds one runtime session (built as ``ferry upscale`` builds it) and runs
``ferry upscale``'s own per-file code on its rows: it reads the file, upscales it and writes the
output itself, atomically, with the same encoder and name as a local run, so the files are the
same. It returns one status row per file, which the driver collects for the progress, the counts
and the failures. Reading and writing inside the actors (rather than in Ray Data's readers and
writers) keeps one damaged or unwritable file a failed row instead of a failed pipeline.

Every node must see the input and output folders at the same path (one machine, or a shared
mount). Ray is optional: ``pip install 'ferry[ray]'``.
"""

from __future__ import annotations

import collections
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ferry._io import reading, remove_stale_temps
from ferry._ray import check_address, cluster_cpus, connected, ferry_error, quieter, ray_message, require
from ferry.errors import UserError
from ferry.superres.upscale import (
    FileResult,
    UpscaleConfig,
    UpscaleResult,
    YChannelModel,
    folder_jobs,
    run_jobs,
    validate_paths,
)

#: longest a worker may take to start: load the model, export it into the cache of a new machine,
#: measure the runtime choice there
_WORKER_START_S = 1800
#: the columns of the status rows the actors return
_COLUMNS = ("index", "status", "seconds", "width", "height", "error", "warning", "node", "runtime")


def upscale_on_ray(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: UpscaleConfig | None = None,
    *,
    address: str = "local",
    workers: int = 0,
    on_file: Callable[[FileResult, int, int], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> UpscaleResult:
    """Upscale every image and video of a folder (recursively, mirrored into ``output``) on a Ray
    cluster: the files :func:`~ferry.superres.upscale.upscale` writes, with its skip-done
    (``config.overwrite`` to redo) and its per-file failures.

    Args:
        source: the input folder; every node of the cluster must see it at this path.
        output: the output folder, likewise.
        config: as for :func:`~ferry.superres.upscale.upscale`; ``threads`` is the CPUs each
            worker reserves and its runtime's threads (0: 1).
        address: ``local`` (a Ray instance started here), ``auto`` (``RAY_ADDRESS`` or the cluster
            running on this machine), ``HOST:PORT`` of a head node or ``ray://HOST:PORT``.
        workers: actors, each with one runtime session (0: as many as the cluster's CPUs hold).
        on_file: called with each file's result, the count reported so far and the total.
        on_status: called with a line when something slow starts.

    Example:
        >>> ferry.upscale_on_ray("photos", "photos_x3", address="auto").failed
        []

    Raises:
        MissingDependencyError: ray is not installed.
        UserError: no such folder, a bad model or address, a cluster without CPUs for a worker.
    """
    cfg = config or UpscaleConfig()
    require("data")
    check_address(address)
    src, out = Path(source), Path(output)
    if os.path.exists(src) and not src.is_dir():
        raise UserError(f"--ray upscales a folder and {src} is a file; leave out --ray for one file")
    if workers < 0:
        raise UserError(f"workers must be 0 (as many as the cluster holds) or more, got {workers}")
    if cfg.backend not in ("auto", "torch"):
        from ferry.backends import REGISTRY

        REGISTRY.get(cfg.backend)  # an unknown name fails here, not on every worker
    with reading(src, None if cfg.model is None or cfg.model.startswith("zoo:") else cfg.model):
        validate_paths(src, out, cfg)
        start = time.perf_counter()
        # the model is opened once here too: its errors are reported as a local run reports them,
        # before any worker starts, and on this machine its export is cached for the workers
        probe = YChannelModel(
            replace(cfg, backend="torch" if cfg.backend == "torch" else "onnxruntime", precision="fp32")
        )
        _, overlap = probe.tiled_runner(cfg)  # measured once, here, for every worker
        cfg = replace(cfg, overlap=overlap)
        result = UpscaleResult(scale=probe.scale, model=probe.model, overlap=overlap)
        jobs = list(folder_jobs(src, out, probe.scale))
        done_before = {k for k, (_, target) in enumerate(jobs) if not cfg.overwrite and os.path.exists(target)}
        for k in sorted(done_before):
            _report(result, FileResult(*jobs[k], "skipped"), len(jobs), on_file)
        todo = [k for k in range(len(jobs)) if k not in done_before]
        for folder in sorted({jobs[k][1].parent for k in todo}):
            remove_stale_temps(folder)
        if todo:
            with connected(address):
                _run_pool(jobs, todo, cfg, workers, result, address, on_file, on_status)
        order = {str(path): k for k, (path, _) in enumerate(jobs)}
        result.files.sort(key=lambda f: order[str(f.source)])
        result.seconds = time.perf_counter() - start
    return result


def _report(
    result: UpscaleResult, item: FileResult, total: int, on_file: Callable[[FileResult, int, int], None] | None
) -> None:
    result.files.append(item)
    if on_file is not None:
        on_file(item, len(result.files), total)


def _run_pool(
    jobs: list[tuple[Path, Path]],
    todo: list[int],
    cfg: UpscaleConfig,
    workers: int,
    result: UpscaleResult,
    address: str,
    on_file: Callable[[FileResult, int, int], None] | None,
    on_status: Callable[[str], None] | None,
) -> None:
    """Run the files ``todo`` (indices into ``jobs``) through the actor pool and report each."""
    import ray

    cpus = max(1, cfg.threads)
    available = cluster_cpus()
    pool = min(workers or int(available // cpus), len(todo))
    if pool < 1 or pool * cpus > available:
        raise UserError(
            f"the Ray cluster has {available:g} CPUs, not enough for {max(pool, 1)} worker(s) of {cpus} (--threads)"
        )
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if on_status is not None:
        on_status(f"Ray: {len(todo)} files on {pool} worker(s) of {cpus} CPU(s), {nodes} node(s) in the cluster")
    # on the workers, --threads is both the CPUs reserved and the runtime's threads
    worker_cfg = replace(cfg, threads=cpus, writers=cfg.writers or cpus, retune=False)
    ran: collections.Counter[str] = collections.Counter()
    used: set[str] = set()
    try:
        for row in _rows(jobs, todo, worker_cfg, pool, cpus):
            path, target = jobs[int(row["index"])]
            item = FileResult(
                path,
                target,
                str(row["status"]),
                float(row["seconds"]),
                (int(row["width"]), int(row["height"])),
                error=str(row["error"]),
                warning=str(row["warning"]),
            )
            ran[str(row["runtime"])] += 1
            used.add(str(row["node"]))
            _report(result, item, len(jobs), on_file)
    except Exception as exc:
        raised = ferry_error(exc)
        if raised is not None:
            raise raised from None
        if not _is_ray_error(exc):
            raise
        raise UserError(
            f"the Ray run stopped: {ray_message(exc)}; the files written are kept, and a rerun does the rest"
        ) from None
    runtime = json.loads(ran.most_common(1)[0][0]) if ran else {}
    runtime["ray"] = {"address": address, "workers": pool, "cpus_per_worker": cpus, "nodes": len(used)}
    if len(ran) > 1:  # `auto` chose differently on different machines
        runtime["ray"]["runtimes"] = [json.loads(r) for r in sorted(ran)]
    result.runtime = runtime


def _is_ray_error(exc: BaseException) -> bool:
    import ray.exceptions

    return isinstance(exc, ray.exceptions.RayError) or type(exc).__module__.startswith("ray.")


def _rows(
    jobs: list[tuple[Path, Path]], todo: list[int], cfg: UpscaleConfig, pool: int, cpus: int
) -> Iterator[dict[str, Any]]:
    """The Ray Data pipeline: one row per file to do, through the actor pool, status rows back as
    the files finish."""
    import logging

    import ray.data

    items = [{"index": k, "source": str(jobs[k][0]), "target": str(jobs[k][1])} for k in todo]
    with warnings.catch_warnings():
        # max_restarts goes through the **ray_remote_args that Ray 2.60 deprecates without a named
        # replacement yet
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Worker,
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=cpus,
            fn_constructor_kwargs={"config": cfg},
            # A restarted actor needs its constructor arguments, which Ray Data keeps in the object
            # store where they may be gone (ray-project/ray#53727; Ray logs an error for each actor
            # saying so): a lost worker stops the run instead, and a rerun does the files not written.
            max_restarts=0,
        )
    dataset.context.enable_progress_bars = False  # the caller shows its own
    # every worker up before the first file is handed out (so that the files spread over the pool),
    # and an actor that cannot start fails the run at once
    dataset.context.wait_for_min_actors_s = _WORKER_START_S
    # Ray Data logs each run's plan, a note that its progress bars are off and a failed run's
    # traceback (ferry raises the error it carries, in a line); its warnings still come through
    quiet = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
    with quieter({**quiet, "ray.data.exceptions": logging.CRITICAL}):
        yield from dataset.iter_rows()


class _Worker:
    """A Ray actor: one runtime session, the files of the rows it is given."""

    def __init__(self, config: UpscaleConfig) -> None:
        import ray

        model = YChannelModel(config)
        self.config = config
        self.scale = model.scale
        self.runner, _ = model.tiled_runner(config)
        self.runtime = json.dumps(model.runtime, sort_keys=True)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        jobs = [(Path(str(s)), Path(str(t))) for s, t in zip(batch["source"], batch["target"], strict=True)]
        result = UpscaleResult(scale=self.scale)
        run_jobs(jobs, self.runner, self.scale, self.config, result, on_file=None, on_frame=None, folder=True)
        rows: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
        for index, item in zip(batch["index"], result.files, strict=True):
            values = (int(index), item.status, item.seconds, *item.size, item.error, item.warning)
            for column, value in zip(_COLUMNS, (*values, self.node, self.runtime), strict=True):
                rows[column].append(value)
        return rows
