"""``ferry upscale``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ferry._io import add_inputs
from ferry.cli._options import JsonOpt
from ferry.cli._render import console, emit_json, err_console, quiet_human, refuse_input_outputs
from ferry.errors import UserError

if TYPE_CHECKING:
    from ferry.superres.upscale import FileResult


def upscale_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="INPUT",
            help="An image, a video (.mp4 .mov .mkv .avi .webm), or a folder (recursive); with --ray, a folder's URI"
            " too (s3://BUCKET/PATH, gs://..., file:///PATH).",
        ),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="PATH", help="Output image, or folder (with --ray, a URI too).")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="zoo:NAME or an ONNX file exported by ferry. Default: the strongest zoo model for the scale"
            " (x3: zoo:superres_span; x2: zoo:superres_span_x2; x4: zoo:superres_span_x4).",
            show_default=False,
        ),
    ] = None,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="The tutorial's ESPCN for the scale instead: about 2.3x less compute, 0.7 dB weaker on held-out photos.",
        ),
    ] = False,
    scale: Annotated[
        int | None,
        typer.Option(
            metavar="N", help="2, 3 or 4 (default 3): picks the zoo model for that factor.", show_default=False
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="auto (fastest runtime that keeps the quality here; measured once, cached), onnxruntime, openvino,"
            " ... or torch (zoo).",
        ),
    ] = "auto",
    precision: Annotated[
        str, typer.Option(metavar="P", help="auto, fp32 or int8 (a gated int8 copy of the model, cached).")
    ] = "auto",
    tile: Annotated[int, typer.Option(metavar="N", help="Tile side in input pixels (0: whole image).")] = 0,
    overlap: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Context pixels around each tile (default: the network's receptive radius, measured: tiled equals"
            " untiled).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(metavar="N", help="Tiles of the same shape run N at a time (with --tile).")] = 1,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo outputs that already exist.")] = False,
    threads: Annotated[int, typer.Option(metavar="N", help="Runtime threads (0: default).")] = 0,
    writers: Annotated[
        int, typer.Option(metavar="N", help="Threads encoding finished images while the next run (0: one per core).")
    ] = 0,
    retune: Annotated[bool, typer.Option("--retune", help="Measure the auto choice again.")] = False,
    png_compression: Annotated[
        int, typer.Option(metavar="N", help="PNG zlib level 0-9 (PIL's default is 6: ~7% smaller, 2.4x slower).")
    ] = 4,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Upscale the folder on a Ray cluster (pip install 'ferry[ray]'), one runtime per worker of --threads"
            " CPUs (default 1): local (start Ray here), auto (RAY_ADDRESS or the cluster on this machine), HOST:PORT"
            " or ray://HOST:PORT. Every node must see INPUT and -o at the same paths, or give URIs (s3://..., read and"
            " written by each node with its own credentials).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """Super-resolve an image, a video or a folder: x3 with the strongest zoo model unless --fast,
    --scale or --model says otherwise. Exit 1 if a file failed."""
    from ferry.superres.upscale import UpscaleConfig, upscale

    add_inputs(source, None if model is None or model.startswith("zoo:") else model)
    refuse_input_outputs(json_out)
    cfg = UpscaleConfig(
        model=model,
        scale=scale,
        fast=fast,
        backend=backend,
        precision=precision,
        tile=tile,
        overlap=overlap,
        batch=batch,
        overwrite=overwrite,
        threads=threads,
        writers=writers,
        retune=retune,
        png_compression=png_compression,
    )
    quiet = quiet_human(json_out)
    progress = Progress(
        TextColumn("upscaling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[name]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
    )
    with progress:
        bar = progress.add_task("files", total=None, name="")
        frames = progress.add_task("frames", total=None, name="frames", visible=False)

        def on_frame(done: int, total: int) -> None:
            progress.update(frames, completed=done, total=total or None, visible=True)

        def on_file(item: FileResult, done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total, name=_file_name(item.source))
            progress.update(frames, visible=False)
            if item.status == "failed":
                progress.console.print(f"[red]failed[/red] {escape(item.error)}", soft_wrap=True)
            elif item.warning:
                progress.console.print(
                    f"[yellow]note[/yellow] {escape(_file_name(item.source))}: {escape(item.warning)}", soft_wrap=True
                )

        def on_status(text: str) -> None:
            progress.console.print(f"[dim]{escape(text)}[/dim]")

        if ray is not None:
            from ferry.superres.distributed import upscale_on_ray

            result = upscale_on_ray(source, output, cfg, address=ray, on_file=on_file, on_status=on_status)
        else:
            result = upscale(source, output, cfg, on_file=on_file, on_frame=on_frame, on_status=on_status)
    emit_json(json_out, result.to_dict())
    if not quiet:
        rt = result.runtime
        if "cached" in rt:
            how = "cached choice" if rt["cached"] else "measured now"
            ratio = rt.get("speedup_vs_fp32_onnxruntime")
            speed = f", {ratio:.1f}x fp32 ONNX Runtime on this machine" if ratio else ""
            console.print(f"runtime: {rt['backend']} ({rt['precision']}){speed} ({how}; --backend to override)")
        console.print(
            f"model: {result.model}" + ("" if model or fast else " (the strongest for the scale; --fast: ESPCN)")
        )
        counts = {s: sum(f.status == s for f in result.files) for s in ("done", "skipped", "failed")}
        console.print(
            f"x{result.scale}: {counts['done']} written, {counts['skipped']} already there, {counts['failed']} failed"
        )
        if len(result.files) == 1 and counts["done"]:
            f = result.files[0]
            console.print(f"{f.source} -> {f.target} ({f.size[0]}x{f.size[1]}, {f.seconds:.2f} s)")
    if not result:
        raise UserError(_failure_summary(result.files))


def _file_name(where: Path | str) -> str:
    """A file's name, from its path or its URI."""
    return where.name if isinstance(where, Path) else PurePosixPath(where).name


def _failure_summary(files: list[FileResult]) -> str:
    """The closing line of a run with failures: how many failed and what became of the others."""
    failed = sum(f.status == "failed" for f in files)
    done = sum(f.status == "done" for f in files)
    skipped = sum(f.status == "skipped" for f in files)
    if failed == len(files):
        tail = "nothing was written" if failed > 1 else "it was not written"
    else:
        parts = [f"{done} written"] + ([f"{skipped} already there"] if skipped else [])
        tail = f"of the other {len(files) - failed}, {', '.join(parts)}"
    return f"{failed} file(s) could not be upscaled (see above); {tail}"
