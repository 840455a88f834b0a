"""``ferry upscale DIR -o OUT --ray ADDRESS``: a folder upscaled by a pool of Ray actors, on this
machine or across a cluster.

A Ray Data pipeline: the files to do (``from_items``, one row each) go through ``map_batches`` on
an actor pool; each actor holds one runtime session (built as ``ferry upscale`` builds it) and runs
``ferry upscale``'s own per-file code on its rows: it reads the file, upscales it and writes the
output itself, atomically, with the same encoder and name as a local run, so the files are the
same. It returns one status row per file, which the driver collects for the progress, the counts
and the failures. Reading and writing inside the actors (rather than in Ray Data's readers and
writers) keeps one damaged or unwritable file a failed row instead of a failed pipeline.

The folders are local paths that every node sees at the same place (one machine, or a shared
mount), or URIs of a filesystem pyarrow knows (``s3://``, ``gs://``, ``file://``...; see
:mod:`ferry._uri`): the driver lists them, and each actor copies its file to a local temporary
folder, runs the same per-file code there and uploads the output whole. Ray is optional: ``pip
install 'ferry[ray]'``.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ferry._io import is_temp_name, reading, remove_stale_temps
from ferry._ray import check_address, cluster_cpus, connected, ferry_error, quieter, ray_message, require
from ferry._uri import Location, download, is_uri, locate, remove_stale, upload
from ferry.errors import UserError
from ferry.superres.imaging import IMAGE_SUFFIXES
from ferry.superres.upscale import (
    VIDEO_SUFFIXES,
    FileResult,
    UpscaleConfig,
    UpscaleResult,
    YChannelModel,
    folder_jobs,
    run_jobs,
    validate_config,
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
        source: the input folder: a local path that every node of the cluster sees, or a URI of a
            filesystem pyarrow knows (``s3://BUCKET/PATH``, ``gs://...``, ``file:///PATH``, with
            pyarrow's options as a query: ``?endpoint_override=HOST:PORT&region=R``); each node
            reads it with its own credentials.
        output: the output folder, likewise (a URI or not, whatever the input is).
        config: as for :func:`~ferry.superres.upscale.upscale`; ``threads`` is the CPUs each
            worker reserves and its runtime's threads (0: 1).
        address: ``local`` (a Ray instance started here), ``auto`` (``RAY_ADDRESS`` or the cluster
            running on this machine), ``HOST:PORT`` of a head node or ``ray://HOST:PORT``.
        workers: actors, each with one runtime session (0: as many as the cluster's CPUs hold).
        on_file: called with each file's result, the count reported so far and the total.
        on_status: called with a line when something slow starts.

    Example:
        >>> ferry.upscale_on_ray("s3://photos/2024", "s3://photos/2024_x3", address="auto").failed
        []

    Raises:
        MissingDependencyError: ray is not installed.
        UserError: no such folder or bucket, a URI pyarrow does not know, storage that refuses the
            credentials, a bad model or address, a cluster without CPUs for a worker.
    """
    cfg = config or UpscaleConfig()
    require("data")
    check_address(address)
    if workers < 0:
        raise UserError(f"workers must be 0 (as many as the cluster holds) or more, got {workers}")
    if cfg.backend not in ("auto", "torch"):
        from ferry.backends import REGISTRY

        REGISTRY.get(cfg.backend)  # an unknown name fails here, not on every worker
    remote = is_uri(source) or is_uri(output)
    with reading(source, None if cfg.model is None or cfg.model.startswith("zoo:") else cfg.model):
        # URIs are listed before the model opens: a bad URI, bucket or credentials fail at once
        files = _uri_files(os.fspath(source), os.fspath(output), cfg) if remote else None
        if files is None:
            _check_local(Path(source), Path(output), cfg)
        start = time.perf_counter()
        # the model is opened once here too: its errors are reported as a local run reports them,
        # before any worker starts, and on this machine its export is cached for the workers
        probe = YChannelModel(
            replace(cfg, backend="torch" if cfg.backend == "torch" else "onnxruntime", precision="fp32")
        )
        _, overlap = probe.tiled_runner(cfg)  # measured once, here, for every worker
        cfg = replace(cfg, overlap=overlap)
        result = UpscaleResult(scale=probe.scale, model=probe.model, overlap=overlap)
        if files is None:
            files = _local_files(Path(source), Path(output), cfg, probe.scale)
        for k in sorted(files.done):
            _report(result, FileResult(*files.jobs[k], "skipped"), len(files.jobs), on_file)
        todo = [k for k in range(len(files.jobs)) if k not in files.done]
        files.tidy(todo)
        if todo:
            with connected(address):
                _run_pool(files, todo, cfg, workers, result, address, on_file, on_status)
        order = {str(path): k for k, (path, _) in enumerate(files.jobs)}
        result.files.sort(key=lambda f: order[str(f.source)])
        result.seconds = time.perf_counter() - start
    return result


@dataclass
class _Files:
    """The files of a run: what each one's result names (a local path, or the file's URI), where
    the workers read and write it (local paths, or paths on ``filesystems``) and the ones an
    earlier run wrote."""

    jobs: list[tuple[Path | str, Path | str]]
    paths: list[tuple[str, str]]
    done: set[int]
    #: the input's and the output's pyarrow filesystems; ``None``: local paths that every node sees
    filesystems: tuple[Any, Any] | None = None

    def tidy(self, todo: list[int]) -> None:
        """Remove the temporary files a killed run left where the files ``todo`` go."""
        folders = sorted({PurePosixPath(self.paths[k][1]).parent for k in todo})
        for folder in folders:
            if self.filesystems is None:
                remove_stale_temps(folder)
            else:
                remove_stale(Location(self.filesystems[1], str(folder), str(folder)))


def _check_local(src: Path, out: Path, cfg: UpscaleConfig) -> None:
    if os.path.exists(src) and not src.is_dir():
        raise UserError(f"--ray upscales a folder and {src} is a file; leave out --ray for one file")
    validate_paths(src, out, cfg)


def _local_files(src: Path, out: Path, cfg: UpscaleConfig, scale: int) -> _Files:
    jobs: list[tuple[Path | str, Path | str]] = [(path, target) for path, target in folder_jobs(src, out, scale)]
    done = {k for k, (_, target) in enumerate(jobs) if not cfg.overwrite and os.path.exists(target)}
    return _Files(jobs, [(str(path), str(target)) for path, target in jobs], done)


def _uri_files(source: str, output: str, cfg: UpscaleConfig) -> _Files:
    """The files of a run whose input or output is a URI, checked and listed as a local run's:
    the same relative names under the output, an output folder inside the input left out."""
    validate_config(cfg)
    src, out = locate(source), locate(output)
    kind = src.kind()
    if kind == "missing":
        raise UserError(f"input not found: {src.name}")
    if kind == "file":
        raise UserError(f"--ray upscales a folder and {src.name} is a file; give the folder that holds it")
    if out.kind() == "file":
        raise UserError(f"{out.name} is a file; give a folder as the output of a folder run")
    inside = out.relative_to(src)
    if inside == ():
        raise UserError(f"refusing to write into {out.name}: it is the input folder; give another output folder")
    names = _inputs(src, inside)
    if not names:
        raise UserError(f"no images or videos in {src.name}")
    written = set() if cfg.overwrite else set(out.files())
    files = [(src.child(name), out.child(name)) for name in names]
    return _Files(
        [(a.name, b.name) for a, b in files],
        [(a.path, b.path) for a, b in files],
        {k for k, name in enumerate(names) if name in written},
        (src.fs, out.fs),
    )


def _inputs(src: Location, skip: tuple[str, ...] | None) -> list[str]:
    """The images and videos under ``src`` as :func:`~ferry.superres.upscale.folder_jobs` finds
    them (``/``-separated relative names in its order), without ferry's temporary files and the
    folder ``skip`` (the output's parts, when it lies inside the input)."""
    found = []
    for name in src.files():
        path = PurePosixPath(name)
        if skip is not None and path.parts[: len(skip)] == skip:
            continue
        if any(is_temp_name(part) for part in path.parts):
            continue
        if path.suffix.lower() in (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES):
            found.append(path)
    return [str(path) for path in sorted(found)]


def _report(
    result: UpscaleResult, item: FileResult, total: int, on_file: Callable[[FileResult, int, int], None] | None
) -> None:
    result.files.append(item)
    if on_file is not None:
        on_file(item, len(result.files), total)


def _run_pool(
    files: _Files,
    todo: list[int],
    cfg: UpscaleConfig,
    workers: int,
    result: UpscaleResult,
    address: str,
    on_file: Callable[[FileResult, int, int], None] | None,
    on_status: Callable[[str], None] | None,
) -> None:
    """Run the files ``todo`` (indices into ``files.jobs``) through the actor pool and report each."""
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
        for row in _rows(files, todo, worker_cfg, pool, cpus):
            path, target = files.jobs[int(row["index"])]
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
            _report(result, item, len(files.jobs), on_file)
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


def _rows(files: _Files, todo: list[int], cfg: UpscaleConfig, pool: int, cpus: int) -> Iterator[dict[str, Any]]:
    """The Ray Data pipeline: one row per file to do, through the actor pool, status rows back as
    the files finish."""
    import logging

    import ray.data

    items = []
    for k in todo:
        (source, target), (source_name, target_name) = files.paths[k], files.jobs[k]
        items.append(
            {
                "index": k,
                "source": source,
                "target": target,
                "source_name": str(source_name),
                "target_name": str(target_name),
            }
        )
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
            fn_constructor_kwargs={"config": cfg, "filesystems": files.filesystems},
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

    def __init__(self, config: UpscaleConfig, filesystems: tuple[Any, Any] | None = None) -> None:
        import ray

        model = YChannelModel(config)
        self.config = config
        self.scale = model.scale
        self.runner, _ = model.tiled_runner(config)
        self.runtime = json.dumps(model.runtime, sort_keys=True)
        self.node = ray.get_runtime_context().get_node_id()
        self.filesystems = filesystems

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        paths = list(zip(map(str, batch["source"]), map(str, batch["target"]), strict=True))
        if self.filesystems is None:
            result = UpscaleResult(scale=self.scale)
            jobs = [(Path(source), Path(target)) for source, target in paths]
            run_jobs(jobs, self.runner, self.scale, self.config, result, on_file=None, on_frame=None, folder=True)
            files = result.files
        else:
            in_fs, out_fs = self.filesystems
            names = zip(map(str, batch["source_name"]), map(str, batch["target_name"]), strict=True)
            files = [
                self._through_local_files(Location(in_fs, source, a), Location(out_fs, target, b))
                for (source, target), (a, b) in zip(paths, names, strict=True)
            ]
        rows: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
        for index, item in zip(batch["index"], files, strict=True):
            values = (int(index), item.status, item.seconds, *item.size, item.error, item.warning)
            for column, value in zip(_COLUMNS, (*values, self.node, self.runtime), strict=True):
                rows[column].append(value)
        return rows

    def _through_local_files(self, source: Location, target: Location) -> FileResult:
        """One file of another filesystem: copied into a local temporary folder, upscaled there by
        ``ferry upscale``'s own per-file code (so the same bytes as a local run), and uploaded whole."""
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="ferry-ray-") as tmp:
            local_in = Path(tmp, "in" + PurePosixPath(source.path).suffix)
            local_out = Path(tmp, "out" + PurePosixPath(target.path).suffix)
            try:
                download(source, local_in)
                result = UpscaleResult(scale=self.scale)
                jobs = [(local_in, local_out)]
                run_jobs(jobs, self.runner, self.scale, self.config, result, on_file=None, on_frame=None, folder=False)
                item = result.files[0]
                if item.status == "done":
                    upload(local_out, target)
            except UserError as exc:
                return FileResult(source.name, target.name, "failed", time.perf_counter() - began, error=str(exc))

        def named(text: str) -> str:  # the user's names, not the temporary ones
            return text.replace(str(local_in), source.name).replace(str(local_out), target.name)

        seconds = time.perf_counter() - began
        error, warning = named(item.error), named(item.warning)
        return replace(item, source=source.name, target=target.name, seconds=seconds, error=error, warning=warning)
