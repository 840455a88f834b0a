"""``ferry verify``: PyTorch against every runtime, with the parity table and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ferry._io import add_inputs
from ferry.backends import NAMES
from ferry.cli._options import ArgOpt, JsonOpt, ReportOpt, WeightsOpt, specs_from
from ferry.cli._render import console, emit_json, quiet_human, status
from ferry.errors import VerificationError


def verify_cmd(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="The PyTorch model: zoo:NAME, file.py:Attr or package.module:Attr.")
    ],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The exported ONNX file.")],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="SPEC|FILE",
            help="Input spec per forward() argument (as for export), or .npy/.npz files as extra samples.",
            show_default=False,
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            metavar="DIR",
            help="Folder of images fed through the model's declared preprocessing.",
            show_default=False,
        ),
    ] = None,
    arg: ArgOpt = None,
    weights: WeightsOpt = None,
    backends: Annotated[
        str,
        typer.Option(
            metavar="NAMES",
            help=f"Comma-separated runtimes to compare with PyTorch, or 'all' (every installed one): {', '.join(NAMES)}.",
        ),
    ] = "onnxruntime",
    samples: Annotated[int, typer.Option(metavar="N", help="Random samples per input shape.")] = 3,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed for the samples.")] = 0,
    judge: Annotated[
        str,
        typer.Option(
            metavar="RULE",
            help="noise: a float output passes when its error against PyTorch in float64 is within 10x PyTorch"
            " float32's own error (or 8 ulp of its scale); tolerance: element-wise rtol/atol against PyTorch"
            " float32 (implied by --rtol/--atol). See docs/verify.md.",
        ),
    ] = "noise",
    rtol: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="Relative tolerance for every float output (judge by tolerance; atol keeps its default).",
            show_default=False,
        ),
    ] = None,
    atol: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="Absolute tolerance for every float output (judge by tolerance; rtol keeps its default).",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME=RTOL,ATOL", help="Per-output NAME=RTOL,ATOL. Repeatable.", show_default=False),
    ] = None,
    json_out: JsonOpt = None,
    report: ReportOpt = None,
    junit_xml: Annotated[
        Path | None,
        typer.Option(
            "--junit-xml", metavar="FILE", help="Also write a JUnit XML file (a test case per backend) for CI."
        ),
    ] = None,
) -> None:
    """Compare PyTorch eager with ONNX runtimes on several samples and shapes. Exit 2 on mismatch."""
    add_inputs(model, file, *(input or []), images)  # no output may land on what the command reads
    import numpy as np

    from ferry.compare import parse_tolerance
    from ferry.errors import UserError
    from ferry.models import load_model
    from ferry.onnx_file import input_names
    from ferry.samples import is_array_file, read_arrays
    from ferry.specs import parse_kwargs
    from ferry.verify import (
        PARITY_HEADERS,
        VerifyConfig,
        failures,
        image_data,
        parity_rows,
        verify,
        write_junit,
        write_report,
    )

    if judge not in ("noise", "tolerance"):
        raise UserError(f"unknown --judge {judge!r}; choose noise or tolerance")
    tols = dict(parse_tolerance(t) for t in tolerance or [])
    cfg = VerifyConfig(
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        samples=samples,
        seed=seed,
        judge=judge,
        rtol=rtol,
        atol=atol,
        tolerances=tols,
    )
    texts = input or []
    specs = [t for t in texts if not is_array_file(t)]
    loaded = load_model(model, args=parse_kwargs(arg or []), weights=weights)
    data: list[tuple[str, dict[str, np.ndarray]]] = []
    files = [t for t in texts if is_array_file(t)]
    if files:
        names = input_names(file)
        data.append((", ".join(files), read_arrays(files, names)))
    if images is not None:
        data += image_data(loaded, images)
    with status("verifying", quiet_human(json_out)):
        result = verify(loaded, file, inputs=specs_from(specs), config=cfg, data=data, photos=images)
    emit_json(json_out, result.to_dict())
    if report is not None:
        write_report(result, report)
    if junit_xml is not None:
        write_junit(result, junit_xml)
    if not quiet_human(json_out):
        shapes = "; ".join(" ".join(f"{k}={'x'.join(map(str, v))}" for k, v in s.items()) for s in result.shapes)
        table = Table(title=f"{model} vs {file}: {result.samples} samples at {shapes}", title_justify="left")
        for col in PARITY_HEADERS:
            table.add_column(col)
        for row in parity_rows(result):
            cells = [f"{c:.2g}" if isinstance(c, float) else str(c) for c in row]
            if ">PASS<" in cells[3] or ">FAIL<" in cells[3]:
                cells[3] = "[green]PASS[/green]" if ">PASS<" in cells[3] else "[red]FAIL[/red]"
            table.add_row(*(c if "[/" in c else escape(c) for c in cells))
        console.print(table)
        for note in result.reference.get("notes", []):
            console.print(f"[yellow]torch[/yellow] {escape(note)}")
        for name, b in result.backends.items():
            for note in b.notes:  # what was not run there and why (static shapes)
                console.print(f"[yellow]{name}[/yellow] {escape(note)}")
            for out, agreement in b.top1().items():  # class scores: does the prediction change?
                console.print(f"{name} {escape(out)}: top-1 agreement with PyTorch {agreement:.1%}")
        for name, problem in failures(result):  # informational backends: details in the JSON
            console.print(f"[red]{name}[/red] {escape(problem)}")
        div = result.first_divergence
        if div and "node" in div:
            where = f" in module {div['module']}" if div.get("module") else ""
            console.print(
                f"first divergence ({escape(div['compared'])}): node {escape(div['node'])} ({div['op_type']}){where},"
                f" max abs diff {div['max_abs_diff']:.3g}"
            )
            if div.get("source"):
                console.print(f"  source: {escape(div['source'])}")
            if div.get("hint"):
                console.print(f"  hint: {escape(div['hint'])}")
        if result.photos is not None:
            section = result.photos
            photo_table = Table(title=section.caption, title_justify="left")
            for col in section.headers:
                photo_table.add_column(col)
            for prow in section.rows():
                photo_table.add_row(*(f"{c:.2f}" if isinstance(c, float) else escape(str(c)) for c in prow))
            console.print(photo_table)
            for subject, note in section.notes():
                console.print(f"[yellow]{subject}[/yellow] {escape(note)}")
        if report is not None:
            console.print(f"report: {report}")
        if junit_xml is not None:
            console.print(f"junit: {junit_xml}")
    if not result:
        failed = [f"{n} ({b.status})" for n, b in result.backends.items() if b.gating and not b.ok]
        raise VerificationError(f"parity check failed on {', '.join(failed)}")
