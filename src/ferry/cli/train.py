"""``ferry train`` and ``ferry zoo``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ferry.cli._options import JsonOpt
from ferry.cli._render import console, emit_json, err_console, quiet_human
from ferry.errors import UserError, VerificationError
from ferry.superres.config import ARCHITECTURE_NAMES, DATA_SET_NAMES, LOSS_NAMES, TrainConfig

zoo_app = typer.Typer(help="List the model zoo and show model cards.", no_args_is_help=True)


def train_cmd(
    task: Annotated[str, typer.Argument(metavar="TASK", help="What to train: superres.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="FILE", help="Weights file to write (.safetensors).")
    ] = Path("superres_x3.safetensors"),
    scale: Annotated[int, typer.Option(metavar="N", help="Upscale factor: 2, 3 or 4.")] = 3,
    steps: Annotated[int, typer.Option(metavar="N", help="Optimizer steps.")] = TrainConfig.steps,
    batch_size: Annotated[int, typer.Option(metavar="N", help="Patches per step.")] = TrainConfig.batch_size,
    patch: Annotated[int, typer.Option(metavar="N", help="Low-resolution patch side.")] = TrainConfig.patch,
    lr: Annotated[float, typer.Option(metavar="X", help="Peak learning rate.")] = TrainConfig.lr,
    seed: Annotated[
        int, typer.Option(metavar="N", help="Seed: the same seed gives the same weights.")
    ] = TrainConfig.seed,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Checkpoint file to save to and resume from; the best weights so far go beside it"
            " (NAME.best.safetensors).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[int, typer.Option(metavar="N", help="Torch threads (0: default).")] = 0,
    precision: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Step arithmetic: fp32, or bf16 (autocast, fp32 weights; about 3x faster on CPUs with AMX or"
            " AVX512-BF16, slower on others). A run may switch when resumed.",
        ),
    ] = TrainConfig.precision,
    eval_every: Annotated[
        int,
        typer.Option(
            metavar="N", help="Steps between scorings of the validation crops; the best-scoring weights are kept."
        ),
    ] = TrainConfig.eval_every,
    checkpoint_every: Annotated[
        int, typer.Option(metavar="N", help="Steps between checkpoint saves.")
    ] = TrainConfig.checkpoint_every,
    arch: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help=f"Network: {', '.join(ARCHITECTURE_NAMES)} (edsr: zoo:superres_edsr; span: zoo:superres_span; span-b: span on a bicubic base; span-w: span with 48 channels).",
        ),
    ] = TrainConfig.arch,
    loss: Annotated[str, typer.Option(metavar="NAME", help=f"Pixel loss: {', '.join(LOSS_NAMES)}.")] = TrainConfig.loss,
    init: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Start from these weights (.safetensors): fine-tuning, or, from a narrower network of the same kind (span for span-w), growing it.",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help=f"Images: {', '.join(DATA_SET_NAMES)} (wallpapers adds the photos of Debian wallpaper packages,"
            " validation held out by package).",
        ),
    ] = TrainConfig.data,
    wallpaper_root: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder the wallpaper packages are installed or extracted under (default: /).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """Train a super-resolution model on images of installed packages (scikit-image, sporco, Debian
    wallpapers; no network)."""
    from ferry.superres.scoring import Evaluation
    from ferry.superres.train import gain_summary, train_superres

    if task != "superres":
        raise UserError(f"unknown training task {task!r}; known: superres")
    if out.suffix != ".safetensors":
        raise UserError(f"--out {out} must end in .safetensors")
    cfg = TrainConfig(
        out=out,
        scale=scale,
        steps=steps,
        batch_size=batch_size,
        patch=patch,
        lr=lr,
        seed=seed,
        checkpoint=checkpoint,
        threads=threads,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        arch=arch,
        loss=loss,
        init=init,
        data=data,
        wallpaper_root=wallpaper_root,
        precision=precision,
    )
    quiet = quiet_human(json_out)
    progress = Progress(
        TextColumn("training x{task.fields[scale]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.5f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet,
    )

    # Without a terminal (a log file) the bar cannot redraw: print a line a minute instead.
    log_lines = not quiet and not err_console.is_terminal
    started = time.monotonic()
    last_line: list[float] = [started, -1.0]  # time and step of the last line (-1: none yet)

    with progress:
        bar = progress.add_task("train", total=steps, scale=scale, loss=0.0)

        def on_step(step: int, loss: float) -> None:
            progress.update(bar, completed=step, loss=loss)
            now = time.monotonic()
            if last_line[1] < 0:  # a resumed run starts counting at its checkpoint's step
                last_line[1] = step - 1
            if log_lines and now - last_line[0] >= 60:
                rate = (step - last_line[1]) / (now - last_line[0])
                last_line[:] = [now, step]
                progress.console.print(
                    f"step {step}/{steps} loss {loss:.5f}, {rate:.2f} steps/s, {now - started:.0f} s since start",
                    highlight=False,
                    soft_wrap=True,
                )

        def on_eval(step: int, ev: Evaluation) -> None:
            g = gain_summary(ev)
            progress.console.print(
                f"step {step}: validation crops PSNR {ev.mean_model:.2f} dB, bicubic {ev.mean_bicubic:.2f} dB,"
                f" gain mean {ev.mean_gain:+.3f} median {g['psnr_gain_db']['median']:+.3f}"
                f" worst {g['psnr_gain_db']['worst']:+.3f} dB, SSIM gain {g['ssim_gain']['mean']:+.4f}",
                highlight=False,
                soft_wrap=True,
            )

        result = train_superres(cfg, on_step=on_step, on_eval=on_eval)
    emit_json(json_out, result.to_dict())
    if not quiet:
        console.print(
            f"wrote {result.weights} (the weights of step {result.best_step}) and {result.card} after {result.steps}"
            f" steps in {result.seconds / 60:.1f} min; gain over bicubic on the whole validation images"
            f" {result.evaluation.mean_gain:+.2f} dB"
        )
    if not result:
        raise VerificationError("the trained model does not beat bicubic on the validation images")


@zoo_app.command("list")
def zoo_list(json_out: JsonOpt = None) -> None:
    """List the zoo models and whether their weights are trained."""
    from ferry import zoo

    rows: list[dict[str, Any]] = [
        {
            "name": m.name,
            "summary": m.summary,
            "trained": m.trained,
            "weights": m.weights_note,
            "inputs": [str(s) for s in m.inputs],
        }
        for m in zoo.REGISTRY
    ]
    emit_json(json_out, rows)
    if quiet_human(json_out):
        return
    table = Table(title="ferry model zoo", title_justify="left")
    for col in ("model", "inputs", "weights", "description"):
        table.add_column(col)
    for r in rows:
        weights = "[green]trained[/green]" if r["trained"] else "[yellow]random[/yellow]"
        table.add_row(f"zoo:{r['name']}", " ".join(r["inputs"]), f"{weights}: {r['weights']}", escape(r["summary"]))
    console.print(table)


@zoo_app.command("info")
def zoo_info(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Zoo model name, e.g. superres.")],
    json_out: JsonOpt = None,
) -> None:
    """Show a zoo model's card: I/O, task, tolerance, training data and validation figures."""
    from ferry import zoo

    m = zoo.get(name.removeprefix("zoo:"))
    card = {
        "name": m.name,
        "summary": m.summary,
        "inputs": [s.to_dict() for s in m.inputs],
        "outputs": list(m.outputs),
        "task": m.task,
        "tolerance": {"rtol": m.tolerance[0], "atol": m.tolerance[1]},
        "weights": m.weights_note,
        "card": m.card(),
    }
    emit_json(json_out, card)
    if quiet_human(json_out):
        return
    console.print(f"[bold]zoo:{m.name}[/bold]: {escape(m.summary)}")
    console.print(f"weights: {m.weights_note}")
    for s in m.inputs:
        console.print(f"input  {s.name}: {s}  ({s.dtype})", markup=False)
    console.print(f"output {', '.join(m.outputs)}")
    for k, v in m.task.items():
        console.print(f"{k}: {escape(str(v))}")
    info = m.card()
    if info:
        console.print(_validation_table(info["validation"]))
        console.print(
            f"trained by `{info['trained_by']}` in {info['training_seconds'] / 60:.1f} min on {info['cpu_threads']}"
            f" CPU threads, torch {info['torch']}; settings {json.dumps(info['config'])}"
        )
        console.print(f"training images: {_files_summary(info['training_data'])}")
        if info.get("note"):
            console.print(f"note: {escape(info['note'])}")


def _validation_table(val: dict[str, Any]) -> Table:
    """The card's validation figures: every photo, then the mean, median and worst gain."""
    images = val["images"]
    ssim = all("ssim_model" in img for img in images)
    table = Table(title="validation (Y channel, border cropped; PSNR in dB)", title_justify="left")
    for col in ("image", "size", "bicubic", "model", "gain", *(("SSIM bicubic", "SSIM model") if ssim else ())):
        table.add_column(col, justify="right")
    for img in images:
        row = ["x".join(map(str, img["size"])), f"{img['psnr_bicubic']:.2f}", f"{img['psnr_model']:.2f}"]
        extra = [f"{img['ssim_bicubic']:.4f}", f"{img['ssim_model']:.4f}"] if ssim else []
        table.add_row(escape(img["name"]), *row, f"{img['gain']:+.2f}", *extra)
    gains = sorted(img["gain"] for img in images)
    mean_ssim = (
        [
            f"{sum(i['ssim_bicubic'] for i in images) / len(images):.4f}",
            f"{sum(i['ssim_model'] for i in images) / len(images):.4f}",
        ]
        if ssim
        else []
    )
    table.add_row(
        "mean",
        "",
        f"{val['mean_psnr_bicubic']:.2f}",
        f"{val['mean_psnr_model']:.2f}",
        f"{val['mean_gain_db']:+.2f}",
        *mean_ssim,
    )
    median = (gains[(len(gains) - 1) // 2] + gains[len(gains) // 2]) / 2
    table.add_row("median gain", "", "", "", f"{median:+.2f}")
    table.add_row("worst gain", "", "", "", f"{gains[0]:+.2f}")
    return table


def _files_summary(data: dict[str, Any]) -> str:
    """The training files by package (``--json`` lists each with its SHA-256)."""
    files = data.get("files")
    if not files:
        return f"scikit-image {', '.join(data['scikit-image'])}; sporco {', '.join(data['sporco'])}"
    counts: dict[str, int] = {}
    for f in files:
        key = f"{f['package']} {f['version']}"
        counts[key] = counts.get(key, 0) + 1
    listed = "; ".join(f"{key}: {n}" for key, n in counts.items())
    return f"{len(files)} files ({listed}); --json lists each with its SHA-256"


def eval_cmd(
    task: Annotated[str, typer.Argument(metavar="TASK", help="What to evaluate: superres.")],
    folder: Annotated[
        Path | None,
        typer.Argument(metavar="[DIR]", help="High-resolution photos (default: the validation photos of --data)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="zoo:NAME or an ONNX file exported by ferry (default: ferry upscale's, zoo:superres_span).",
            show_default=False,
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Validation photos without DIR: bundled (chelsea, coffee, monarch) or wallpapers (those and the"
            " held-out Debian wallpaper photos the model cards are measured on).",
        ),
    ] = "bundled",
    backend: Annotated[str, typer.Option(metavar="NAME", help="Runtime to run the model on.")] = "onnxruntime",
    border: Annotated[int, typer.Option(metavar="N", help="Pixels cropped from each side before measuring.")] = 3,
    report: Annotated[
        Path | None, typer.Option("--report", metavar="FILE", help="HTML page with crops.", show_default=False)
    ] = None,
    json_out: JsonOpt = None,
) -> None:
    """PSNR and SSIM (Y channel) of a super-resolution model against PIL bicubic."""
    from ferry.superres.evaluate import evaluate_superres

    if task != "superres":
        raise UserError(f"unknown evaluation task {task!r}; known: superres")
    ev = evaluate_superres(model, folder, data=data, backend=backend, border=border, report=report)
    emit_json(json_out, ev.to_dict())
    if quiet_human(json_out):
        return
    table = Table(title=f"{ev.model} x{ev.scale} vs PIL bicubic (Y, {ev.border} px border)", title_justify="left")
    for col in ("image", "size", "PSNR bicubic", "PSNR model", "gain", "SSIM bicubic", "SSIM model"):
        table.add_column(col, justify="right")
    for s in ev.images:
        table.add_row(
            escape(s.name),
            f"{s.size[0]}x{s.size[1]}",
            f"{s.psnr_bicubic:.2f}",
            f"{s.psnr_model:.2f}",
            f"{s.gain:+.2f}",
            f"{s.ssim_bicubic:.4f}",
            f"{s.ssim_model:.4f}",
        )
    table.add_row(
        "mean",
        "",
        f"{ev.mean_bicubic:.2f}",
        f"{ev.mean_model:.2f}",
        f"{ev.mean_gain:+.2f}",
        f"{ev.mean_ssim_bicubic:.4f}",
        f"{ev.mean_ssim_model:.4f}",
    )
    table.add_row("median gain", "", "", "", f"{ev.median_gain:+.2f}", "", "")
    table.add_row("worst gain", "", "", "", f"{ev.worst_gain:+.2f}", "", "")
    console.print(table)
    if report is not None:
        console.print(f"report: {report}")
