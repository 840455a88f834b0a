"""``ferry bench``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry._io import add_inputs
from ferry.cli._options import ArgOpt, JsonOpt, ReportOpt, WeightsOpt
from ferry.cli._render import console, emit_json, err_console, quiet_human
from ferry.errors import UserError


def int_list(text: str, option: str) -> tuple[int, ...]:
    """``1,2,4`` -> (1, 2, 4), with a one-line error naming the option."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UserError(f"{option} takes comma-separated integers, e.g. 1,2; got {text!r}") from None
    if not values:
        raise UserError(f"{option} is empty; give e.g. 1,2")
    return values


def bench_cmd(
    model_or_file: Annotated[
        str, typer.Argument(metavar="MODEL|FILE", help="zoo:NAME, file.py:Attr, package.module:Attr, or an .onnx file.")
    ],
    model: Annotated[
        str | None,
        typer.Option(metavar="SOURCE", help="With an .onnx file: its PyTorch source, timed as the eager baseline."),
    ] = None,
    backends: Annotated[
        str, typer.Option(metavar="NAMES", help="Comma-separated runtimes, or 'all' (eager + installed ONNX runtimes).")
    ] = "all",
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="SPEC",
            help="Input shape, e.g. 1x1x224x224; repeat for more sizes (one per model input per size).",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[str, typer.Option(metavar="N,N", help="Thread counts to try (0: each runtime's default).")] = (
        "0"
    ),
    batch: Annotated[
        str | None, typer.Option(metavar="N,N", help="Batch sizes to try on axis 0.", show_default=False)
    ] = None,
    seconds: Annotated[float, typer.Option(metavar="S", help="Time budget per input size and thread count.")] = 2.0,
    warmup: Annotated[int, typer.Option(metavar="N", help="Untimed runs per backend first.")] = 2,
    min_runs: Annotated[int, typer.Option(metavar="N", help="Timed runs per backend at least.")] = 5,
    memory: Annotated[bool, typer.Option("--memory/--no-memory", help="Measure peak memory per backend.")] = True,
    arg: ArgOpt = None,
    weights: WeightsOpt = None,
    json_out: JsonOpt = None,
    report: ReportOpt = None,
) -> None:
    """Time a model on every runtime (interleaved runs), with ratios against PyTorch eager; warns when the
    machine is busy or the runs spread too wide to trust the numbers."""
    add_inputs(model_or_file, model)  # no output may land on what the command reads
    from ferry.bench import BENCH_HEADERS, BenchConfig, bench, bench_rows, write_bench_report
    from ferry.machine import describe
    from ferry.specs import parse_input_spec, parse_kwargs

    cfg = BenchConfig(
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        inputs=tuple(parse_input_spec(t) for t in input or ()),
        threads=int_list(threads, "--threads"),
        batches=int_list(batch, "--batch") if batch else (),
        seconds=seconds,
        warmup=warmup,
        min_runs=min_runs,
        memory=memory,
    )
    quiet = quiet_human(json_out)

    def progress(text: str) -> None:
        if not quiet:
            err_console.print(f"[dim]timing {escape(text)}[/dim]")

    result = bench(
        model_or_file, model=model, args=parse_kwargs(arg or []), weights=weights, config=cfg, on_progress=progress
    )
    emit_json(json_out, result.to_dict())
    if report is not None:
        write_bench_report(result, report)
    if quiet:
        return
    table = Table(title=f"{result.source} on {describe(result.machine)}", title_justify="left")
    # The terminal gets the main columns; p99 and load times are in --json and --report.
    shown = [i for i, h in enumerate(BENCH_HEADERS) if h not in ("p99 ms", "load ms")]
    for i in shown:
        col = BENCH_HEADERS[i]
        table.add_column(col, justify="left" if col in ("backend", "prec", "input") else "right", no_wrap=True)
    for row in bench_rows(result):
        cells = [row[i] for i in shown]
        table.add_row(*(_num(c) if isinstance(c, float) else escape(str(c)) for c in cells))
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning: {escape(warning.message)}[/yellow]")
    if report is not None:
        console.print(f"report: {report}")
    if not result:
        failed = sorted({r.backend for r in result.rows if not r.ok})
        raise UserError(f"{', '.join(failed)} could not run the model; the others were timed")


def _num(value: float) -> str:
    """Latencies and rates with 3 significant digits, without exponents."""
    if value != value:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2f}"
