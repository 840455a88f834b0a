"""How verify judges: the noise-aware rule against PyTorch in float64, independent --rtol/--atol,
and every runtime contained in its own row (errors and refusals never stop the others)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import helper
from torch import nn

import ferry
import ferry.subject
from ferry.backends import REGISTRY
from ferry.compare import NoiseRule, judge_noise, top1_agreement
from ferry.specs import parse_input_specs
from ferry.verify import VerifyConfig, summary_text, write_junit


def test_the_noise_rule_follows_pytorchs_own_error_and_the_outputs_scale() -> None:
    rng = np.random.default_rng(0)
    exact = rng.normal(size=1000)
    noise = 1e-6 * rng.normal(size=1000)
    torch32 = exact + noise
    # As far from float64 as PyTorch float32 is (here 3x): pass; 30x further: fail.
    assert judge_noise("y", torch32, exact, exact + 3 * noise).ok
    far = judge_noise("y", torch32, exact, exact + 30 * noise)
    assert not far.ok and far.rule == "noise" and "float64" in far.problem
    assert far.error_vs_float64 == pytest.approx(30 * np.abs(noise).max())
    assert far.torch_error == pytest.approx(np.abs(noise).max())
    # Outputs PyTorch computes exactly: a few ulp of the output's scale are allowed, not more.
    scale = float(np.abs(exact).max())
    assert judge_noise("y", exact, exact, exact + 4 * 2.0**-23 * scale).ok
    assert not judge_noise("y", exact, exact, exact + 16 * 2.0**-23 * scale).ok
    # Tiny outputs are judged at their own scale: halving them is a failure, whatever atol says.
    small = 1e-5 * exact
    assert not judge_noise("y", small, small, small / 2).ok
    # A bf16 runtime gets bf16's epsilon in both terms.
    rule = NoiseRule()
    assert rule.allowed(1e-6, 1.0, "bf16") == pytest.approx(max(10 * 1e-6 * 2**16, 8 * 2**-7))


class SmallLogits(nn.Module):
    """A classifier head at random init: logits of order 1e-5, the size of float32's default atol."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(16, 10)
        with torch.no_grad():
            self.fc.weight.mul_(1e-5)
            self.fc.bias.mul_(1e-5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x)}


def _halve_outputs(path: Path, out: Path) -> None:
    """A broken file: every output multiplied by 0.5 at the end of the graph."""
    model = onnx.load(path)
    graph = model.graph
    for output in graph.output:
        inner = output.name + "_before_halving"
        for node in graph.node:
            node.output[:] = [inner if o == output.name else o for o in node.output]
        graph.initializer.append(onnx.numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        graph.node.append(helper.make_node("Mul", [inner, "half"], [output.name]))
    onnx.save(model, out)


def test_halved_small_logits_fail_with_two_samples(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    ferry.export(SmallLogits(), good, inputs=parse_input_specs(["batch=2,16"]))
    _halve_outputs(good, bad)
    assert ferry.verify(SmallLogits(), good, config=VerifyConfig(samples=2))
    report = ferry.verify(SmallLogits(), bad, config=VerifyConfig(samples=2))
    assert not report.ok
    stats = report.backends["onnxruntime"].worst()["logits"]
    assert stats.rule == "noise" and stats.error_vs_float64 is not None and stats.allowed is not None
    assert stats.error_vs_float64 > 100 * stats.allowed
    # Halving keeps every prediction: the top-1 agreement says so, the verdict still fails.
    assert report.backends["onnxruntime"].top1() == {"logits": 1.0}
    # The fixed per-element rule (1e-5 + 1e-4 |x|) waves the broken file through: the old miss.
    assert ferry.verify(SmallLogits(), bad, config=VerifyConfig(samples=2, judge="tolerance"))


class BicubicHead(nn.Module):
    """A conv and a bicubic upsampling: ONNX Runtime's Resize is as close to float64 as PyTorch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(torch.relu(self.conv(x)), scale_factor=2, mode="bicubic", align_corners=False)
        return self.head(y)


def test_bicubic_head_passes_and_both_errors_are_reported(tmp_path: Path) -> None:
    out = tmp_path / "b.onnx"
    ferry.export(BicubicHead(), out, inputs=parse_input_specs(["batch=1,3,height=16,width=16"]))
    report = ferry.verify(BicubicHead(), out)
    assert report.ok, summary_text(report)
    stats = report.backends["onnxruntime"].worst()["output"]
    assert 0 < stats.torch_error < 1e-4 and stats.error_vs_float64 is not None
    data = report.to_dict()
    assert data["reference"]["rule"] == "noise" and data["reference"]["float64"] is True
    out_json = data["backends"]["onnxruntime"]["outputs"]["output"]
    assert {"error_vs_float64", "torch_error", "allowed", "rule"} <= set(out_json)
    assert "torch f32 error" in summary_text(report)


def test_rtol_and_atol_are_independent(tmp_path: Path, tiny: Any) -> None:
    out = tmp_path / "t.onnx"
    ferry.export(tiny("TinyConv"), out, inputs=parse_input_specs(["batch=1,3,8,8"]))
    only_rtol = ferry.verify(tiny("TinyConv"), out, config=VerifyConfig(rtol=1e-3))
    stats = only_rtol.backends["onnxruntime"].worst()["output"]
    assert (stats.rule, stats.rtol, stats.atol) == ("tolerance", 1e-3, 1e-5)
    only_atol = ferry.verify(tiny("TinyConv"), out, config=VerifyConfig(atol=1e-3))
    stats = only_atol.backends["onnxruntime"].worst()["output"]
    assert (stats.rtol, stats.atol) == (1e-4, 1e-3)
    assert only_rtol.ok and only_atol.ok


class FloatOnly(nn.Module):
    """A module that cannot run in float64: it multiplies by a float32 matrix it makes itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mm(x, torch.ones(4, 3, dtype=torch.float32))


def test_a_module_that_cannot_run_in_double_is_judged_by_tolerance(tmp_path: Path) -> None:
    out = tmp_path / "f.onnx"
    ferry.export(FloatOnly(), out, inputs=parse_input_specs(["batch=2,4"]))
    report = ferry.verify(FloatOnly(), out)
    assert report.ok
    assert report.backends["onnxruntime"].worst()["output"].rule == "tolerance"
    assert any("float64" in note for note in report.reference["notes"])


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the runtime crashed\nwith a second line")


def test_a_runtime_that_raises_is_its_own_row(tmp_path: Path, tiny: Any, monkeypatch: pytest.MonkeyPatch, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "t.onnx"
    ferry.export(tiny("TinyConv"), out, inputs=parse_input_specs(["batch=1,3,8,8"]))
    monkeypatch.setattr(type(REGISTRY.get("reference")), "load", _boom)
    cfg = VerifyConfig(backends=("onnxruntime", "reference"))
    report = ferry.verify(tiny("TinyConv"), out, config=cfg)
    assert report.backends["onnxruntime"].ok
    broken = report.backends["reference"]
    assert broken.status == "error" and broken.errors == ["load: RuntimeError: the runtime crashed"]
    assert not report.ok
    # The CLI exits 2 (a gating runtime errored), and still writes the JSON and the JUnit file.
    report_json, junit = tmp_path / "v.json", tmp_path / "j.xml"
    res = cli("verify", tiny("TinyConv"), out, "--backends", "onnxruntime,reference", "--json", report_json,
              "--junit-xml", junit)  # fmt: skip
    assert res.code == 2, res.err
    assert json.loads(report_json.read_text())["backends"]["reference"]["status"] == "error"
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("2", "1", "0")


def test_a_runtime_that_raises_on_one_sample_keeps_the_others(tmp_path: Path, tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "t.onnx"
    ferry.export(tiny("TinyConv"), out, inputs=parse_input_specs(["batch=1,3,8,8"]))
    session_type = type(REGISTRY.get("reference").open(ferry.subject.resolve(tiny("TinyConv"), onnx=out)))
    monkeypatch.setattr(session_type, "_run", _boom)
    report = ferry.verify(tiny("TinyConv"), out, config=VerifyConfig(backends=("onnxruntime", "reference")))
    assert report.backends["onnxruntime"].ok and report.backends["reference"].status == "error"
    assert all(c.error == "RuntimeError: the runtime crashed" for c in report.backends["reference"].checks)


def test_refusals_are_rows_that_gate_only_when_named(tmp_path: Path, tiny: Any, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out = tmp_path / "t.onnx"
    ferry.export(tiny("TinyConv"), out, inputs=parse_input_specs(["batch=1,3,8,8"]))

    def refuse(self: Any, subject: Any) -> str:
        return "this runtime has no Conv"

    monkeypatch.setattr(type(REGISTRY.get("reference")), "supports", refuse)
    named = ferry.verify(tiny("TinyConv"), out, config=VerifyConfig(backends=("onnxruntime", "reference")))
    verdict = named.backends["reference"]
    assert (verdict.status, verdict.refused, verdict.gating) == ("refused", "this runtime has no Conv", True)
    assert not named.ok
    assert "refused: this runtime has no Conv" in summary_text(named)
    everything = ferry.verify(tiny("TinyConv"), out, config=VerifyConfig(backends=("all",)))
    assert everything.backends["reference"].status == "refused" and not everything.backends["reference"].gating
    assert everything.ok
    junit = write_junit(everything, tmp_path / "j.xml")
    assert "refused: this runtime has no Conv" in junit.read_text()


def test_judge_must_be_a_known_rule(tmp_path: Path, tiny: Any, cli) -> None:  # type: ignore[no-untyped-def]
    res = cli("verify", tiny("TinyConv"), tmp_path / "missing.onnx", "--judge", "loose")
    assert res.code == 1 and "unknown --judge 'loose'" in res.err


def test_top1_agreement_counts_rows_whose_argmax_moves() -> None:
    ref = np.array([[0.1, 0.9], [0.8, 0.2], [0.5, 0.4], [0.3, 0.7]])
    got = ref.copy()
    got[2] = [0.4, 0.5]  # one prediction of four changes
    assert top1_agreement(ref, got) == 0.75
    assert top1_agreement(ref[:, :1], got[:, :1]) is None  # one class: no choice to agree on
