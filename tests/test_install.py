"""What a plain ``pip install ferry`` can do, and what ``ferry[all]`` brings (issue 16, item 6).

The core install is simulated in this environment: a fresh interpreter in which every package of
every extra is blocked from import (``sys.modules[name] = None``), so any code path that needs an
extra fails as it would on a machine without it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

#: the modules each extra provides; a new extra must be added here (the test below insists)
EXTRA_MODULES = {
    "openvino": ("openvino",),
    "video": ("av",),
    "executorch": ("executorch",),
    "litert": ("litert_torch", "ai_edge_litert"),
    "mnn": ("MNN",),
    "ncnn": ("ncnn", "pnnx"),
    "web": ("playwright",),
    "serve": ("starlette", "uvicorn", "prometheus_client"),
    "train": ("sporco",),
    "ray": ("ray",),
}


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads pyproject.toml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project["optional-dependencies"])


def test_all_installs_every_optional_extra_and_make_installs_all() -> None:
    extras = _extras()
    optional = set(extras) - {"dev", "all"}
    assert optional == set(EXTRA_MODULES) & set(extras) and set(EXTRA_MODULES) - set(extras) <= {"ray"}
    (spec,) = extras["all"]
    assert spec.startswith("ferry[") and set(spec[len("ferry[") : -1].split(",")) == optional
    assert '-e ".[dev,all]"' in (ROOT / "Makefile").read_text()


def _core_only(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    blocked = sorted({m for mods in EXTRA_MODULES.values() for m in mods})
    prelude = f"import sys\nfor _m in {blocked!r}:\n    sys.modules[_m] = None\n"
    env = {"FERRY_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )


def test_a_core_install_upscales_a_photo_and_runs_the_demo(tmp_path: Path) -> None:
    """The default model, the automatic runtime choice (its gate photos come with scikit-image)
    and the demo, with no extra importable."""
    Image.new("RGB", (64, 48), (120, 60, 30)).save(tmp_path / "photo.png")
    code = (
        "from ferry.cli import run\n"
        "sys.argv = ['ferry', 'upscale', 'photo.png', '-o', 'photo_x3.png']\n"
        "try:\n    run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "sys.argv = ['ferry', 'demo', '-o', 'demo']\n"
        "try:\n    run()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'sporco' in sys.modules and sys.modules['sporco'] is None\n"
    )
    res = _core_only(code, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "model: zoo:superres_span" in res.stdout and "runtime: onnxruntime" in res.stdout
    with Image.open(tmp_path / "photo_x3.png") as out:
        assert out.size == (192, 144)
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "stronger.png").is_file()


def test_eval_names_the_extra_for_monarch_on_a_core_install(tmp_path: Path) -> None:
    res = _core_only(
        "from ferry.cli import run\nsys.argv = ['ferry', 'eval', 'superres']\nrun()\n",
        tmp_path,
    )
    assert res.returncode == 1
    assert "sporco is not installed" in res.stderr and "pip install 'ferry[train]'" in res.stderr


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_each_extra_is_installed_here(extra: str) -> None:
    """This environment (``make install``: ``.[dev,all]``) has every extra, so no optional test
    is skipped for a missing package by accident."""
    import importlib.util

    if extra not in _extras():
        pytest.skip(f"no {extra} extra in pyproject.toml yet")
    for module in EXTRA_MODULES[extra]:
        assert importlib.util.find_spec(module) is not None, f"{module} ({extra}) is not installed"
