"""The real-model suite: 23 models of 21 architectures from transformers and code, exported and verified on
ONNX Runtime and OpenVINO, against an expected verdict table.

Every model gets random weights from a tiny config (built in code, no network). A verdict that
is not the expected one (a false alarm, or a runtime that stops failing where it used to) fails
the test. Marked ``slow`` and ``realmodels``: ``make test`` runs it; ``-m "not realmodels"``
skips it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.backends import REGISTRY
from ferry.specs import parse_input_specs
from ferry.verify import VerifyConfig, VerifyReport, summary_text
from tests.realmodels.models import MODELS

pytest.importorskip("transformers", reason="the real-model suite builds its models with transformers")

SOURCE = Path(__file__).with_name("models.py")
RUNTIMES = [b for b in ("onnxruntime", "openvino") if REGISTRY.get(b).available()]

#: model -> runtime -> (status, a phrase of the reason) where it is not a plain pass.
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    # EfficientNet's head pools with a kernel of hidden_dim (1280 in b0) over a 1x1 map, which
    # PyTorch's ceil_mode allows and OpenVINO's AveragePool refuses to load.
    "efficientnet": {"openvino": ("error", "AveragePool")},
}

pytestmark = [pytest.mark.slow, pytest.mark.realmodels]


def source(name: str) -> str:
    return f"{SOURCE}:{name}"


_exported: dict[str, Path] = {}


def exported(name: str, tmp: Path) -> Path:
    """Each model exported once per session, as users export it (specs from MODELS)."""
    if name not in _exported:  # (a KV cache's past_key_values inputs are added by the export)
        path = tmp / f"{name}.onnx"
        ferry.export(source(name), path, inputs=parse_input_specs(MODELS[name]))
        _exported[name] = path
    return _exported[name]


def verified(name: str, path: Path, backends: tuple[str, ...], samples: int = 2) -> VerifyReport:
    """Verified as users do after an export: the specs come from the file (with a KV cache's)."""
    return ferry.verify(source(name), path, config=VerifyConfig(backends=backends, samples=samples))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_verdicts_are_right_on_onnxruntime_and_openvino(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = exported(name, tmp_path_factory.getbasetemp())
    report = verified(name, path, tuple(RUNTIMES))
    for runtime in RUNTIMES:
        verdict = report.backends[runtime]
        status, reason = EXPECTED.get(name, {}).get(runtime, ("pass", ""))
        assert verdict.status == status, f"{name} on {runtime}:\n{summary_text(report)}"
        assert reason in (verdict.refused or " ".join(verdict.errors)), verdict.errors
        if status == "pass":
            # Judged against float64, with both errors in the report.
            assert all(s.rule in ("noise", "exact") for s in verdict.worst().values()), summary_text(report)


def test_the_suite_is_broad() -> None:
    assert len(MODELS) >= 20
    families = {"bert", "gpt2", "gpt2_cached", "llama", "llama_cached", "t5", "clip", "wav2vec2", "WhisperEncoder"}
    families |= {"vit", "swin", "convnext", "efficientnet", "MobileNetV3Tiny"}
    assert families <= set(MODELS)


@pytest.mark.parametrize("name", ["bert", "resnet"])
def test_every_runtime_on_a_real_model_is_a_row_and_the_json_is_written(name: str, tmp_path_factory: pytest.TempPathFactory, cli: Any) -> None:  # fmt: skip
    path = exported(name, tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp(f"all-{name}") / "verify.json"
    inputs = [a for s in MODELS[name] for a in ("--input", s)]
    res = cli("verify", source(name), path, *inputs, "--backends", "all", "--samples", "1", "--json", out)
    assert res.code in (0, 2), res.err  # never 3: a runtime's bug is its row, not a crash
    report = json.loads(out.read_text())
    assert set(report["backends"]) == {b for b in REGISTRY.installed() if REGISTRY.get(b).artifact != "torch"}
    statuses = {b: v["status"] for b, v in report["backends"].items()}
    assert statuses["onnxruntime"] == "pass" and statuses["onnxruntime-noopt"] == "pass", statuses
    assert res.code == (0 if report["ok"] else 2)
    for backend, verdict in report["backends"].items():
        if verdict["status"] in ("error", "refused"):  # each with its reason, in one line
            reason = verdict["refused"] or verdict["errors"][0]
            assert reason and "\n" not in reason, (backend, reason)
