from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "tiny_models.py"


def pytest_configure(config: pytest.Config) -> None:
    """One marker per registered backend (``pytest -m backend_mnn`` runs MNN's conformance)."""
    from ferry.backends import REGISTRY

    for name in REGISTRY.names():
        config.addinivalue_line("markers", f"backend_{name.replace('-', '_')}: tests of the {name} backend")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``ferry ARGS`` in-process and return exit code, stdout and stderr."""
    from ferry.cli import main

    def run(*args: str | os.PathLike[str]) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def tiny() -> Callable[[str], str]:
    """Source string for a model class in tests/tiny_models.py."""
    return lambda name: f"{TINY}:{name}"


@pytest.fixture(scope="session")
def superres_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zoo:superres exported once for the whole session (dynamic batch/height/width)."""
    import ferry

    path = tmp_path_factory.mktemp("superres") / "superres.onnx"
    ferry.export("zoo:superres", path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _ferry_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A cache of exported models and runtime choices private to this test session."""
    os.environ["FERRY_CACHE_DIR"] = str(tmp_path_factory.mktemp("ferry-cache"))
