from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.bench import BenchConfig, bench, write_bench_report
from ferry.errors import UserError
from ferry.machine import PeakMemory, machine
from ferry.specs import parse_input_spec

FAST = {"seconds": 0.05, "warmup": 1, "min_runs": 3, "memory": True}


def test_bench_times_every_backend_interleaved_with_ratios(superres_onnx: Path) -> None:
    cfg = BenchConfig(backends=("torch", "onnxruntime", "onnxruntime-noopt"), **FAST)  # type: ignore[arg-type]
    report = bench(superres_onnx, model="zoo:superres", config=cfg)
    assert report
    assert [r.backend for r in report.rows] == ["torch", "onnxruntime", "onnxruntime-noopt"]
    runs = {r.runs for r in report.rows}
    assert len(runs) == 1 and runs.pop() >= 3  # interleaved rounds: every backend ran as often
    eager = report.rows[0]
    assert eager.speedup_vs_eager == pytest.approx(1.0)
    for r in report.rows[1:]:
        assert r.speedup_vs_eager == pytest.approx(eager.median / r.median)
        # measured (the mechanism itself is tested below); a 244 KiB model may fit in memory the
        # process already holds from earlier tests, so the peak it adds can be 0
        assert r.load_seconds > 0 and r.peak_memory_bytes is not None and r.peak_memory_bytes >= 0
    d = report.to_dict()
    assert d["machine"]["cpu"] and d["machine"]["usable_cores"] >= 1
    assert d["versions"]["onnxruntime"] and d["rows"][1]["latency_ms"]["p99"] >= d["rows"][1]["latency_ms"]["min"]
    ms = d["rows"][1]["latency_ms"]
    assert ms["p25"] <= ms["median"] <= ms["p75"] and d["rows"][1]["relative_iqr"] >= 0
    assert d["load"]["cpus"] >= 1 and isinstance(d["warnings"], list)  # whatever this machine's load is
    json.dumps(d)


def test_bench_sizes_threads_and_batches_of_a_model_source() -> None:
    cfg = BenchConfig(
        backends=("onnxruntime",),
        inputs=(parse_input_spec("1x1x16x16"), parse_input_spec("1x1x24x32")),
        threads=(1, 2),
        batches=(1, 3),
        **FAST,  # type: ignore[arg-type]
    )
    report = bench("zoo:superres", config=cfg)
    assert report.export_seconds is not None and report.export_seconds > 0
    got = {(r.shape, r.threads) for r in report.rows}
    assert got == {(f"{b}x1x{s}", t) for b in (1, 3) for s in ("16x16", "24x32") for t in (1, 2)}
    three = next(r for r in report.rows if r.batch == 3)
    assert three.throughput == pytest.approx(3 / three.median)
    assert all(r.speedup_vs_eager is None for r in report.rows)  # no eager baseline was asked for


def test_bench_onnx_file_alone_has_no_eager_baseline(superres_onnx: Path) -> None:
    report = bench(superres_onnx, config=BenchConfig(backends=("all",), **FAST))  # type: ignore[arg-type]
    names = [r.backend for r in report.rows]
    assert "torch" not in names and "reference" not in names and "onnxruntime" in names
    with pytest.raises(UserError, match="torch needs the PyTorch model"):
        bench(superres_onnx, config=BenchConfig(backends=("torch",), **FAST))  # type: ignore[arg-type]


def test_bench_refuses_a_batch_on_a_static_axis(tmp_path: Path, tiny: Callable[[str], str]) -> None:
    path = tmp_path / "static.onnx"
    ferry.export(tiny("TinyConv"), path, inputs=[parse_input_spec("1,3,8,8")])
    with pytest.raises(UserError, match="static"):
        bench(path, config=BenchConfig(backends=("onnxruntime",), batches=(2,), **FAST))  # type: ignore[arg-type]
    with pytest.raises(UserError, match="1 --input specs were given"):
        bench(
            tiny("TwoInTwoOut"),
            config=BenchConfig(backends=("onnxruntime",), inputs=(parse_input_spec("2,4"),), **FAST),  # type: ignore[arg-type]
        )


def test_peak_memory_sees_an_allocation() -> None:
    with PeakMemory() as mem:
        block = np.ones(128 * 2**20, np.uint8)
        del block
    if mem.added is None:
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    # The process's RSS is shared with the threads earlier tests left (servers, runtime pools),
    # which may free memory during the block: half the allocation is the bound that holds.
    assert mem.added >= 64 * 2**20


def test_machine_is_described() -> None:
    m = machine()
    assert m["usable_cores"] >= 1 and m["arch"] and isinstance(m["isa"], list)


def test_bench_cli_json_and_report(cli: Callable[..., object], superres_onnx: Path, tmp_path: Path) -> None:
    html = tmp_path / "bench.html"
    res = cli(
        "bench", superres_onnx, "--model", "zoo:superres", "--backends", "torch,onnxruntime", "-i", "1x1x32x32",
        "--seconds", "0.05", "--min-runs", "3", "--json", "-", "--report", html,
    )  # fmt: skip
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    data = json.loads(res.out)  # type: ignore[attr-defined]
    assert [r["shape"] for r in data["rows"]] == ["1x1x32x32", "1x1x32x32"]
    text = html.read_text()
    assert "Median latency" in text and "onnxruntime" in text and data["machine"]["cpu"] in text
    bad = cli("bench", superres_onnx, "--threads", "two")
    assert bad.code == 1 and "--threads" in bad.err  # type: ignore[attr-defined]


def test_write_bench_report_is_atomic_and_self_contained(superres_onnx: Path, tmp_path: Path) -> None:
    report = bench(superres_onnx, config=BenchConfig(backends=("onnxruntime",), **FAST))  # type: ignore[arg-type]
    out = write_bench_report(report, tmp_path / "r.html")
    text = out.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_bench_exports_a_model_without_declared_inputs_dynamic_where_sizes_differ(tiny: Callable[[str], str]) -> None:
    cfg = BenchConfig(
        backends=("torch", "onnxruntime"),
        inputs=(parse_input_spec("1,3,8,8"), parse_input_spec("1,3,16,12")),
        batches=(1, 2),
        **FAST,  # type: ignore[arg-type]
    )
    report = bench(tiny("TinyConv"), config=cfg)
    assert report, [r.error for r in report.rows]
    assert {r.shape for r in report.rows} == {"1x3x8x8", "2x3x8x8", "1x3x16x12", "2x3x16x12"}


def test_no_memory_leaves_the_peak_unmeasured(superres_onnx: Path) -> None:
    cfg = BenchConfig(backends=("onnxruntime",), seconds=0.05, min_runs=3, memory=False)
    assert all(r.peak_memory_bytes is None for r in bench(superres_onnx, config=cfg).rows)
