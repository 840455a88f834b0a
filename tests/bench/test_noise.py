"""The noise rule, fed made-up numbers: no timing here, nothing that depends on this machine's load."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ferry.bench import (
    BENCH_HEADERS,
    BUSY_LOAD_PER_CPU,
    NOISY_RELATIVE_IQR,
    BenchReport,
    BenchRow,
    MachineLoad,
    bench_rows,
    noise_warnings,
    write_bench_report,
)
from ferry.bench._noise import MIN_RUNS_TO_JUDGE_SPREAD, relative_iqr
from ferry.machine import machine

QUIET = MachineLoad(before=0.1, after=1.2, cpus=8, own_cores=1.0)
#: Runs 10.0 +- 0.2 ms: an interquartile range of 2% of the median.
STEADY = [0.0098, 0.0099, 0.0100, 0.0100, 0.0101, 0.0102, 0.0100, 0.0099]
#: Half the runs slowed by a neighbour: the middle half spans 40% of the median.
NOISY = [0.010, 0.010, 0.010, 0.014, 0.015, 0.016, 0.010, 0.017]


def test_a_quiet_machine_with_steady_runs_gets_no_warning() -> None:
    assert noise_warnings(QUIET, {"torch 1x3": STEADY, "onnxruntime 1x3": STEADY}) == []
    assert not QUIET.busy and QUIET.per_cpu == pytest.approx(0.2 / 8)


def test_a_loaded_machine_is_reported_before_the_numbers() -> None:
    busy = MachineLoad(before=1.6, after=2.4, cpus=2, own_cores=1.0)
    [warning] = noise_warnings(busy, {"torch 1x3": STEADY})
    assert busy.busy and warning.kind == "load" and warning.rows == ()
    assert "was 1.6 on 2 CPUs" in warning.message and "--threads 1" in warning.message
    # the threshold itself counts as busy; just below it does not
    assert MachineLoad(before=BUSY_LOAD_PER_CPU * 4, after=None, cpus=4).busy
    assert not MachineLoad(before=BUSY_LOAD_PER_CPU * 4 - 0.01, after=None, cpus=4).busy


def test_load_that_arrives_during_the_timing_counts_but_our_own_does_not() -> None:
    # Quiet before; afterwards 3.5 of which this process itself can account for at most 1.0.
    arrived = MachineLoad(before=0.1, after=3.5, cpus=4, own_cores=1.0)
    assert arrived.others == pytest.approx(2.5) and arrived.busy
    # A process timing a runtime on all 4 cores raises the load average by itself: not a warning.
    ours = MachineLoad(before=0.1, after=4.0, cpus=4, own_cores=4.0)
    assert not ours.busy and noise_warnings(ours, {"onnxruntime 1x3": STEADY}) == []


def test_without_a_load_average_only_the_spread_is_judged() -> None:
    unknown = MachineLoad(before=None, after=None, cpus=4)
    assert unknown.others is None and unknown.per_cpu is None and not unknown.busy
    assert [w.kind for w in noise_warnings(unknown, {"torch 1x3": NOISY})] == ["spread"]
    assert MachineLoad(before=1.0, after=None, cpus=None).per_cpu is None


def test_a_wide_spread_names_the_rows() -> None:
    assert relative_iqr(STEADY) < NOISY_RELATIVE_IQR < relative_iqr(NOISY)
    [warning] = noise_warnings(QUIET, {"torch 1x3": NOISY, "onnxruntime 1x3": STEADY})
    assert warning.kind == "spread" and warning.rows == ("torch 1x3",)
    assert f"torch 1x3 ({relative_iqr(NOISY):.1%})" in warning.message
    # too few runs to have quartiles: not judged
    assert noise_warnings(QUIET, {"torch 1x3": NOISY[: MIN_RUNS_TO_JUDGE_SPREAD - 1]}) == []


def test_both_warnings_together() -> None:
    busy = MachineLoad(before=3.0, after=3.0, cpus=2, own_cores=1.0)
    assert [w.kind for w in noise_warnings(busy, {"torch 1x3": NOISY})] == ["load", "spread"]


def _report(latencies: list[float], load: MachineLoad) -> BenchReport:
    row = BenchRow("torch", "2.13", "fp32", "1x3", 1, 0, runs=len(latencies), latencies=latencies)
    rows = [row, BenchRow("openvino", "", "fp32", "1x3", 1, 0, error="refused")]
    return BenchReport(
        source="zoo:x",
        onnx_path=Path("x.onnx"),
        rows=rows,
        machine=machine(),
        versions={},
        config={"seconds": 1.0, "warmup": 1, "min_runs": 5},
        load=load,
        warnings=noise_warnings(load, {r.label: r.latencies for r in rows if r.ok}),
    )


def test_the_spread_and_the_warnings_reach_the_json_the_table_and_the_html(tmp_path: Path) -> None:
    report = _report(NOISY, MachineLoad(before=1.8, after=2.0, cpus=2, own_cores=1.0))
    row = report.rows[0]
    assert row.iqr == pytest.approx(row.stat(75) - row.stat(25)) and row.relative_iqr == pytest.approx(
        relative_iqr(NOISY)
    )
    d = json.loads(json.dumps(report.to_dict()))
    ms = d["rows"][0]["latency_ms"]
    assert ms["p25"] <= ms["median"] <= ms["p75"] and ms["iqr"] == pytest.approx(ms["p75"] - ms["p25"])
    assert d["rows"][0]["relative_iqr"] == pytest.approx(relative_iqr(NOISY))
    assert d["rows"][1]["relative_iqr"] is None and d["rows"][1]["latency_ms"] == {}
    assert d["load"]["busy"] and d["load"]["cpus"] == 2 and d["load"]["load_average_1min_before"] == 1.8
    assert [w["kind"] for w in d["warnings"]] == ["load", "spread"] and d["warnings"][1]["rows"] == ["torch 1x3"]
    assert d["ok"] is False  # the refused row; warnings alone never fail a run
    table = bench_rows(report)
    iqr = BENCH_HEADERS.index("IQR ms")
    assert table[0][iqr] == pytest.approx(1e3 * row.iqr) and len(table[1]) == len(BENCH_HEADERS)
    text = write_bench_report(report, tmp_path / "r.html").read_text()
    assert "warning (load)" in text and "warning (spread)" in text and "IQR" in text and "1.80 before" in text
    quiet = _report(STEADY, QUIET)
    assert quiet.warnings == [] and "warning (" not in write_bench_report(quiet, tmp_path / "q.html").read_text()


def test_the_cli_prints_the_spread_and_a_yellow_warning(
    cli: Callable[..., object], superres_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BusyWatch:
        def stop(self) -> MachineLoad:
            return MachineLoad(before=7.5, after=7.5, cpus=2, own_cores=1.0)

    # ``ferry.bench`` the attribute is the function; the module is what bench() looks LoadWatch up in
    monkeypatch.setattr(importlib.import_module("ferry.bench"), "LoadWatch", BusyWatch)
    res = cli("bench", superres_onnx, "--backends", "onnxruntime", "-i", "1x1x16x16", "--seconds", "0.05",
              "--min-runs", "3", "--no-memory")  # fmt: skip
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    out = " ".join(res.out.split())  # type: ignore[attr-defined]
    assert (
        "IQR ms" in out and "warning: busy machine: the other processes' 1-minute load average was 7.5 on 2 CPUs" in out
    )
