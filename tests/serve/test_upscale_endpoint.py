"""``POST /upscale`` of a super-resolution model: an uploaded photo comes back as ``ferry upscale``
writes it; bad uploads get protocol errors; ``ferry serve`` stops gracefully on SIGTERM."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ferry.serve import Server
from tests.serve.conftest import metric, start


def upload(server: Server, body: bytes, *, kind: str = "image/png", query: str = "") -> tuple[int, Any, bytes]:
    request = urllib.request.Request(
        f"{server.url}/upscale{query}", data=body, headers={"Content-Type": kind}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96x72 crop of the cat, with an ICC profile and a DPI that the output must keep."""
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "eye.png"
    img = Image.fromarray(data.chelsea()).crop((100, 50, 196, 122))
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(path, icc_profile=icc, dpi=(144, 144))
    return path


def test_an_uploaded_photo_comes_back_as_ferry_upscale_writes_it(
    server: Server, photo: Path, tmp_path: Path, cli: Any
) -> None:
    res = cli("upscale", photo, "-o", tmp_path / "cli.png", "--fast", "--backend", "onnxruntime", "--precision", "fp32")
    assert res.code == 0, res.err
    status, headers, body = upload(server, photo.read_bytes())
    assert status == 200 and headers["Content-Type"] == "image/png", body[:200]
    assert headers["X-Image-Size"] == "96x72 -> 288x216"
    assert body == (tmp_path / "cli.png").read_bytes()  # the same file, byte for byte
    with Image.open(io.BytesIO(body)) as img:
        assert (
            img.size == (288, 216)
            and img.info.get("icc_profile")
            and img.info["dpi"] == pytest.approx((144, 144), abs=0.01)
        )


def test_other_formats_and_grayscale(server: Server, photo: Path) -> None:
    status, headers, body = upload(server, photo.read_bytes(), query="?format=webp")
    assert status == 200 and headers["Content-Type"] == "image/webp" and Image.open(io.BytesIO(body)).size == (288, 216)
    gray = io.BytesIO()
    Image.open(photo).convert("L").save(gray, "JPEG")
    status, headers, body = upload(server, gray.getvalue(), kind="image/jpeg", query="?format=jpeg")
    with Image.open(io.BytesIO(body)) as img:
        assert status == 200 and img.format == "JPEG" and img.mode == "L" and img.size == (288, 216)
    deep = io.BytesIO()
    Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).save(deep, "PNG")
    status, headers, body = upload(server, deep.getvalue())
    with Image.open(io.BytesIO(body)) as img:  # 16-bit grayscale stays 16-bit, as in ferry upscale
        assert status == 200 and img.mode == "I;16" and img.size == (120, 90)


def test_bad_uploads_get_protocol_errors_and_the_server_goes_on(server: Server, photo: Path) -> None:
    cases = [
        (b"this is not an image", "image/png", "", 400, "not an image"),
        (b"", "image/png", "", 400, "the body is empty"),
        (photo.read_bytes(), "text/plain", "", 415, "Content-Type 'text/plain'"),
        (photo.read_bytes(), "image/png", "?format=gif", 400, "unknown format 'gif'"),
        (photo.read_bytes(), "image/png", "?model=other", 404, "no model 'other'"),
    ]
    for body, kind, query, code, message in cases:
        status, headers, reply = upload(server, body, kind=kind, query=query)
        assert (status, headers["Content-Type"]) == (code, "application/json"), reply
        assert message in json.loads(reply)["error"]
    assert upload(server, photo.read_bytes())[0] == 200


def test_images_over_the_pixel_limit_get_413_from_their_header(photo: Path) -> None:
    with start("zoo:superres", max_pixels=96 * 72 - 1) as small:
        status, _, reply = upload(small, photo.read_bytes())
        assert status == 413 and "96x72 pixels, more than 6911 (--max-pixels)" in json.loads(reply)["error"]
        assert metric(small, "ferry_requests_total", 'code="413"') == 1


def test_the_page_is_served_with_the_model_name(server: Server) -> None:
    with urllib.request.urlopen(server.url + "/", timeout=10) as reply:
        page = reply.read().decode()
        assert "default-src 'self'" in reply.headers["Content-Security-Policy"]
    assert 'data-model="superres"' in page and "Upscale a photo (x3)" in page and 'id="file"' in page


def test_ferry_serve_stops_on_sigterm_after_answering_the_request_in_flight(photo: Path, superres_file: Path) -> None:
    """The CLI in its own process: the request that is running when SIGTERM arrives still gets its
    answer, then the process exits 143 (terminated) without a traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "ferry", "serve", "zoo:superres", "--port", "0", "--backend", "onnxruntime"]
    proc = subprocess.Popen(
        [*cmd, "--batch-timeout-ms", "1500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(2)]  # "superres: zoo:superres on ...", "  http://..."
        url = re.search(r"http://127\.0\.0\.1:\d+", banner[1])
        assert url, [*banner, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""]
        port = url.group().rsplit(":", 1)[1]
        result: dict[str, Any] = {}

        def send() -> None:
            srv = type("S", (), {"url": url.group()})()
            result["reply"] = upload(srv, photo.read_bytes())  # type: ignore[arg-type]

        client = threading.Thread(target=send)
        client.start()
        time.sleep(0.5)  # the request now waits in the batching window (1.5 s)
        proc.send_signal(signal.SIGTERM)
        client.join(60)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["reply"][0] == 200 and result["reply"][2].startswith(b"\x89PNG"), result
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, err
    assert port
