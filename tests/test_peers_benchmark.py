"""benchmarks/peers.py's smoke run (``--quick``): the scoring, the JSON and the skips of missing peers."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ferry_bench_peers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_quick_scores_ferry_against_bicubic_and_skips_missing_peers(
    peers: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers, "NODE_DIR", tmp_path / "no-node-modules")
    out = tmp_path / "peers.json"
    assert peers.main(["--quick", "--only", "superres,esrgan-slim", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["key"]: r for r in report["rows"]}
    assert list(rows) == ["bicubic", "superres"]
    assert report["protocol"]["photos"] == ["chelsea", "coffee", "monarch"]
    assert rows["bicubic"]["mean_gain"] == 0.0
    assert rows["superres"]["mean_gain"] > 0.5  # ESPCN beats bicubic on every bundled photo
    assert rows["superres"]["parameters"] == 59_657
    assert all(0.0 < i["ssim"] <= 1.0 and i["ms"] > 0 for i in rows["superres"]["images"])
    assert "npm ci --prefix benchmarks/peers" in report["skipped"]["esrgan-slim"]


def test_quick_runs_an_upscalerjs_model_in_node(peers: ModuleType, tmp_path: Path) -> None:
    row = next(r for r in peers.ROWS if r.key == "esrgan-slim")
    reason = row.missing()
    if reason:
        pytest.skip(f"UpscalerJS is not installed ({reason})")
    assert shutil.which("node")
    out = tmp_path / "peers.json"
    assert peers.main(["--quick", "--only", "esrgan-slim", "--out", str(out)]) == 0
    slim = {r["key"]: r for r in json.loads(out.read_text())["rows"]}["esrgan-slim"]
    assert slim["parameters"] == 226_815 and slim["runtime"].startswith("TensorFlow.js")
    assert -5.0 < slim["mean_gain"] < 5.0  # aligned and in range: a shifted or mis-scaled output loses far more
