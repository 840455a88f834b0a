"""Conformance suite: architectures users export, through `ferry export` and `ferry verify`,
judged on every installed backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ferry.backends import REGISTRY
from tests.conformance_models import CASES

MODELS = Path(__file__).with_name("conformance_models.py")
ONNX_BACKENDS = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "onnx"]

# What each deployment target does with the models it cannot run right, measured here: "wrong"
# (it runs and verify fails it: exit 2) or "refused" (its converter cannot take the model: named
# with the reason, and not failing `--backends all`). Every other pair must pass.
EXPECTED: dict[str, dict[str, str]] = {
    # MNN 3.6: the converter aborts on the LSTM's While loop; bicubic Resize differs at the border
    # (first divergence: the Resize node, max abs diff 1.8).
    "mnn": {"LSTMTagger": "refused", "BicubicUp": "wrong"},
    # LiteRT (litert-torch 0.10): torch.export refuses the data-dependent branch; the rest converts
    # and matches at the export shape (its programs are static: other shapes are listed as not run).
    "litert": {"DataDependentBranch": "refused"},
    # ncnn (pnnx): every image model converts and matches at fp32; ferry's adapter takes only
    # N x C x H x W float inputs, so the others are refused with that reason.
    "ncnn": {
        n: "refused"
        for n in (
            "MLP",
            "TokenTransformer",
            "LSTMTagger",
            "BiGRU",
            "MultiIO",
            "WhereCumsumTopk",
            "EinsumAttention",
            "DataDependentBranch",
        )
    },
    # ExecuTorch 1.5 (XNNPACK): RNNs lower but give wrong results at other sequence lengths;
    # einsum attention (two dynamic dims in a reshape) and bicubic cannot be lowered.
    "executorch": {
        "LSTMTagger": "wrong",
        "BiGRU": "wrong",
        "EinsumAttention": "refused",
        "BicubicUp": "refused",
        "DataDependentBranch": "refused",
    },
}

_cache: dict[str, dict[str, Any]] = {}


def _verified(name: str, cli: Any, tmp: Path) -> dict[str, Any]:
    """Export once and verify on every installed backend; cached per model for the session."""
    if name not in _cache:
        specs, _ = CASES[name]
        onnx_path = tmp / f"{name}.onnx"
        inputs = [a for s in specs for a in ("--input", s)]
        res = cli("export", f"{MODELS}:{name}", "-o", onnx_path, *inputs)
        assert res.code == 0, res.err
        report = tmp / f"{name}.json"
        res = cli("verify", f"{MODELS}:{name}", onnx_path, *inputs, "--backends", "all", "--json", report)
        _cache[name] = {"code": res.code, "err": res.err, "report": json.loads(report.read_text())}
    return _cache[name]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ONNX_BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_conformance(name: str, backend: str, cli: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    result = _verified(name, cli, tmp_path_factory.getbasetemp())
    verdict = result["report"]["backends"][backend]
    _, expected_code = CASES[name]
    if expected_code == 2:
        # The data-dependent branch must never pass silently: ferry exits 2 and shows where.
        assert result["code"] == 2
        assert not result["report"]["ok"]
        return
    expected = EXPECTED.get(backend, {}).get(name, "pass")
    if expected != "pass":
        _judge(expected, backend, verdict, result)
        return
    if not verdict["gating"]:
        # A lossy default precision (OpenVINO's bf16) is reported, measured, and never gates.
        assert verdict["checks"] > 0 and verdict["max_abs_diff"] is not None
        # ...and the ONNX runtimes that gate all passed, but for the known wrong ones above.
        others = result["report"]["backends"]
        assert all(
            others[b]["ok"] for b in ONNX_BACKENDS if others[b]["gating"] and EXPECTED.get(b, {}).get(name) != "wrong"
        )
        return
    assert verdict["ok"], json.dumps(verdict["outputs"], indent=1)[:2000]
    assert len(result["report"]["shapes"]) >= 2, "dynamic dims must be verified at more than one shape"


def test_the_suite_is_broad() -> None:
    assert len(CASES) >= 15
    assert {"reference", "onnxruntime", "onnxruntime-noopt"} <= set(ONNX_BACKENDS)


MODULE_BACKENDS = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact == "module"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", MODULE_BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_conformance_module_targets(
    name: str, backend: str, cli: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Targets lowered from the PyTorch module (ExecuTorch, LiteRT), judged against EXPECTED."""
    result = _verified(name, cli, tmp_path_factory.getbasetemp())
    verdict = result["report"]["backends"][backend]
    expected = EXPECTED.get(backend, {}).get(name, "pass")
    if expected == "pass":
        assert verdict["ok"] and verdict["gating"], verdict["errors"]
    else:
        _judge(expected, backend, verdict, result)


def _judge(expected: str, backend: str, verdict: dict[str, Any], result: dict[str, Any]) -> None:
    if expected == "refused":
        reason = {
            "executorch": "ExecuTorch cannot lower the model",
            "litert": "LiteRT cannot convert the model",
            "mnn": "MNN cannot convert the model",
            "ncnn": "ncnn cannot take the model",
        }[backend]
        assert not verdict["gating"] and reason in verdict["errors"][0], verdict["errors"]
    else:
        assert verdict["gating"] and not verdict["ok"] and result["code"] == 2
