"""ferry's local HTTP servers (the ort-web harness, ``serve`` for a web package, ``ferry view``'s):
127.0.0.1 only, an exact list of files, ``Host`` checked. Raw requests over a socket, no browser."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ferry import _browser as web
from ferry.errors import UserError

SECRET = b"AWS_SECRET_ACCESS_KEY=hunter2"


def raw_get(
    port: int, target: str, *, host: str | None = "default", method: str = "GET", extra: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """Send one request as written (no client normalises the target) and return status, headers, body."""
    host_line = f"Host: 127.0.0.1:{port}\r\n" if host == "default" else ("" if host is None else f"Host: {host}\r\n")
    request = f"{method} {target} HTTP/1.1\r\n{host_line}{extra}Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode("latin-1"))
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def busy_port() -> socket.socket:
    """A socket listening on a port of 127.0.0.1 (close it when done)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def plant_secrets(folder: Path) -> list[str]:
    """Secrets next to a served folder's files, and request targets that try to reach them."""
    (folder / ".env").write_bytes(SECRET)
    (folder / "secret.txt").write_bytes(SECRET)
    (folder / ".secrets").mkdir()
    (folder / ".secrets" / "id_rsa").write_bytes(SECRET)
    (folder / "sub").mkdir()
    (folder / "sub" / "secret.txt").write_bytes(SECRET)
    (folder.parent / "outside.txt").write_bytes(SECRET)
    (folder / "link.txt").symlink_to(folder / "secret.txt")
    return [
        ".env",
        "secret.txt",
        ".secrets/id_rsa",
        "sub/secret.txt",
        "sub/",
        "link.txt",
        "../outside.txt",
        "%2e%2e/outside.txt",
        "%2E%2E%2Foutside.txt",
        "..%2f..%2foutside.txt",
        "%252e%252e/outside.txt",
        "..\\outside.txt",
        f"{folder.parent / 'outside.txt'}",
        f"/{folder / 'secret.txt'}",
        "?../../outside.txt",
        "",
    ]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><p>the page</p>")
    (folder / "model.onnx").write_bytes(b"model bytes")
    return folder


def _files(folder: Path) -> dict[str, Path]:
    return {"index.html": folder / "index.html", "model.onnx": folder / "model.onnx"}


def test_host_allowed_only_names_loopback() -> None:
    for ok in ("127.0.0.1", "localhost", "127.0.0.1:8080", "LOCALHOST:8080", " localhost:8080 "):
        assert web.host_allowed(ok, 8080), ok
    for bad in (None, "", "evil.example", "evil.example:8080", "127.0.0.1:8081", "127.0.0.1.nip.io:8080", "[::1]:8080"):
        assert not web.host_allowed(bad, 8080), bad


def test_a_server_gives_its_files_and_nothing_beside_them(site: Path) -> None:
    targets = plant_secrets(site)
    with web.serve(_files(site)) as base:
        port = int(base.split(":")[2].split("/")[0])
        prefix = base.removeprefix(f"http://127.0.0.1:{port}")
        status, headers, body = raw_get(port, prefix + "model.onnx")
        assert status == 200 and body == b"model bytes"
        assert headers["cross-origin-opener-policy"] == "same-origin" and headers["x-content-type-options"] == "nosniff"
        assert raw_get(port, prefix + "index.html")[0] == 200
        for target in targets:
            for full in (prefix + target, "/" + target, prefix + "sub/../" + target):
                status, _, body = raw_get(port, full)
                assert status == 404 and SECRET not in body and b"model" not in body, full
        for plain in (
            "/model.onnx",
            "/index.html",
            "/",
            prefix[:-1],
            "*",
            f"http://127.0.0.1:{port}{prefix}model.onnx",
        ):
            status, _, body = raw_get(port, plain)
            assert status in (400, 404) and b"model bytes" not in body, plain


@pytest.mark.parametrize(
    "host",
    [None, "evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "127.0.0.1:1", "", "two"],
)
def test_a_request_not_addressed_to_loopback_is_refused(site: Path, host: str | None) -> None:
    with web.serve(_files(site)) as base:
        port = int(base.split(":")[2].split("/")[0])
        target = base.removeprefix(f"http://127.0.0.1:{port}") + "model.onnx"
        if host == "two":
            status, _, body = raw_get(port, target, extra="Host: evil.example\r\n")
        else:
            status, _, body = raw_get(port, target, host=None if host is None else host.format(port=port))
        assert status == 403 and b"model bytes" not in body
        assert raw_get(port, target, host=f"localhost:{port}")[0] == 200


def test_a_file_swapped_after_the_server_started_is_not_served(site: Path) -> None:
    plant_secrets(site)
    with web.serve(_files(site)) as base:
        port = int(base.split(":")[2].split("/")[0])
        target = base.removeprefix(f"http://127.0.0.1:{port}") + "model.onnx"
        (site / "model.onnx").unlink()
        (site / "model.onnx").symlink_to(site / "secret.txt")
        status, _, body = raw_get(port, target)
        assert status == 404 and SECRET not in body
        (site / "model.onnx").unlink()
        (site / "model.onnx").hardlink_to(site / "secret.txt")  # a regular file, but another one
        status, _, body = raw_get(port, target)
        assert status == 404 and SECRET not in body


def test_only_get_and_head(site: Path) -> None:
    with web.serve(_files(site)) as base:
        port = int(base.split(":")[2].split("/")[0])
        target = base.removeprefix(f"http://127.0.0.1:{port}") + "model.onnx"
        status, headers, body = raw_get(port, target, method="HEAD")
        assert status == 200 and headers["content-length"] == str(len(b"model bytes")) and body == b""
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            assert raw_get(port, target, method=method)[0] == 501


def test_busy_and_out_of_range_ports_are_user_errors() -> None:
    listener = busy_port()
    try:
        port = listener.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} on 127.0.0.1 is in use"):
            web.LocalServer({"a.txt": b"a"}, port=port)
    finally:
        listener.close()
    for port in (-1, 65536, 10**6):
        with pytest.raises(UserError, match="out of range"):
            web.LocalServer({"a.txt": b"a"}, port=port)


def test_a_served_name_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a regular file"):
        web.LocalServer({"x": tmp_path})
    with pytest.raises(UserError, match="cannot serve"):
        web.LocalServer({"x": tmp_path / "missing"})


def test_ort_web_harness_serves_only_the_page_the_runtime_and_the_model(tmp_path: Path) -> None:
    from ferry.backends.ort_web import page_files

    dist = tmp_path / "dist"
    dist.mkdir()
    for name in web.RUNTIME_FILES:
        (dist / name).write_bytes(name.encode())
    (dist / "package.json").write_text("{}")
    model = tmp_path / "models" / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"model bytes")
    plant_secrets(model.parent)
    files = page_files(model, dist)
    assert set(files) == {"harness.html", "model.onnx", *web.RUNTIME_FILES}
    with web.serve(files) as base:
        port = int(base.split(":")[2].split("/")[0])
        prefix = base.removeprefix(f"http://127.0.0.1:{port}")
        assert raw_get(port, prefix + "model.onnx")[2] == b"model bytes"
        assert b"ferryRun" in raw_get(port, prefix + "harness.html")[2]
        for target in (
            "package.json",
            "m.onnx",
            ".env",
            "secret.txt",
            "../models/secret.txt",
            "%2e%2e/dist/package.json",
            "",
        ):
            status, _, body = raw_get(port, prefix + target)
            assert status == 404 and SECRET not in body, target
        assert raw_get(port, prefix + "model.onnx", host="attacker.example")[0] == 403
