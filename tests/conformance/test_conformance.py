"""Conformance suite: architectures users export, through `ferry export` and `ferry verify`,
judged on every installed backend."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from ferry.backends import REGISTRY
from tests.conformance.models import CASES

MODELS = Path(__file__).with_name("models.py")
#: Every installed runtime ferry compares with PyTorch (the eager reference itself excepted).
BACKENDS = [n for n in REGISTRY.installed() if REGISTRY.get(n).artifact != "torch"]


def flow(backend: str) -> tuple[dict[str, str], str]:
    """A backend's known gaps, kept beside it in ``flows/<backend>.py``: model -> "wrong" (it runs
    and verify fails it: exit 2) or "refused" (its converter cannot take the model: named with the
    reason, not failing ``--backends all``), and the refusal's wording. Every other pair must pass."""
    try:
        module = importlib.import_module(f"tests.conformance.flows.{backend.replace('-', '_')}")
    except ModuleNotFoundError:
        return {}, ""
    return dict(module.EXPECTED), str(module.REFUSAL)


def _params() -> list[Any]:
    return [
        pytest.param(name, backend, marks=getattr(pytest.mark, f"backend_{backend.replace('-', '_')}"))
        for name in CASES
        for backend in BACKENDS
    ]


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
@pytest.mark.parametrize(("name", "backend"), _params())
def test_conformance(name: str, backend: str, cli: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One model on one runtime, judged against the runtime's flow (its known gaps)."""
    result = _verified(name, cli, tmp_path_factory.getbasetemp())
    verdict = result["report"]["backends"][backend]
    _, expected_code = CASES[name]
    if expected_code == 2:
        # The data-dependent branch must never pass silently: ferry exits 2 and shows where.
        assert result["code"] == 2
        assert not result["report"]["ok"]
        return
    gaps, refusal = flow(backend)
    expected = gaps.get(name, "pass")
    if expected == "refused":
        assert verdict["status"] == "refused" and not verdict["gating"], verdict
        assert refusal in verdict["refused"], verdict["refused"]
        return
    if expected == "wrong":
        assert verdict["gating"] and not verdict["ok"] and result["code"] == 2
        return
    if not verdict["gating"]:
        # A lossy default precision (OpenVINO's bf16) is reported, measured, and never gates.
        assert verdict["checks"] > 0 and verdict["max_abs_diff"] is not None
        # ...and the runtimes that gate all passed, but for their known wrong ones.
        others = result["report"]["backends"]
        assert all(others[b]["ok"] for b in BACKENDS if others[b]["gating"] and flow(b)[0].get(name) != "wrong")
        return
    assert verdict["ok"], json.dumps(verdict["outputs"], indent=1)[:2000]
    if REGISTRY.get(backend).artifact == "onnx":  # lowered programs may be static (shapes not run)
        assert len(result["report"]["shapes"]) >= 2, "dynamic dims must be verified at more than one shape"


def test_the_suite_is_broad() -> None:
    assert len(CASES) >= 15
    assert {"reference", "onnxruntime", "onnxruntime-noopt"} <= set(BACKENDS)


def test_every_flow_names_a_registered_backend_and_a_known_model() -> None:
    for path in sorted((Path(__file__).parent / "flows").glob("[!_]*.py")):
        backend = path.stem.replace("_", "-")
        assert backend in REGISTRY, f"flows/{path.name} names no backend"
        gaps, refusal = flow(backend)
        assert refusal and set(gaps) <= set(CASES) and set(gaps.values()) <= {"wrong", "refused"}
