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


#: Connections to other machines attempted during the session: (test, address). None are made:
#: each is refused as if the machine were offline, and tests/test_no_network.py asserts that
#: ferry's own commands attempt none.
NETWORK_ATTEMPTS: list[tuple[str, str]] = []


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple) or not address:  # AF_UNIX paths, abstract sockets
        return True
    host = str(address[0])
    return host in ("localhost", "::1", "0.0.0.0", "::") or host.startswith("127.")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """No test reaches another machine: connecting anywhere but this one fails like an offline
    machine (what ferry must cope with) and is recorded."""
    import socket

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address: object) -> None:
        if not _is_local(address):
            NETWORK_ATTEMPTS.append((request.node.nodeid, repr(address)))
            raise OSError(101, f"network is unreachable (ferry's tests run offline): {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        real_connect(self, address)  # type: ignore[arg-type]

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return real_connect_ex(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
