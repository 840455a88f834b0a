"""``ferry serve`` on the Open Inference Protocol, through Triton's own client (tritonclient.http):
JSON and binary tensors, metadata, protocol errors, batching, and a server that keeps serving."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ferry.serve import Server
from tests.serve.conftest import metric, start


def local(superres_file: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(superres_file), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def infer(client: Any, x: np.ndarray, *, binary: bool, name: str = "input", datatype: str = "FP32") -> np.ndarray:
    inp = httpclient.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    return client.infer("superres", [inp], outputs=[out]).as_numpy("output")


def post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(server.url + path, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def still_serving(client: Any, superres_file: Path) -> None:
    x = np.random.default_rng(7).random((1, 1, 8, 8), dtype=np.float32)
    assert np.abs(infer(client, x, binary=True) - local(superres_file, x)).max() <= 1e-5


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_returns_what_onnx_runtime_computes_here(client: Any, superres_file: Path, binary: bool) -> None:
    x = np.random.default_rng(0).random((2, 1, 24, 20), dtype=np.float32)
    got = infer(client, x, binary=binary)
    assert got.shape == (2, 1, 72, 60) and got.dtype == np.float32
    assert np.abs(got - local(superres_file, x)).max() <= 1e-5
    assert np.array_equal(got, local(superres_file, x))  # in fact equal: the same runtime on the same file


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compressed_bodies_are_accepted(client: Any, superres_file: Path, compression: str) -> None:
    x = np.random.default_rng(2).random((1, 1, 16, 12), dtype=np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    got = client.infer("superres", [inp], request_compression_algorithm=compression).as_numpy("output")
    assert np.array_equal(got, local(superres_file, x))


def test_outputs_default_to_binary_as_tritonclient_asks(client: Any, superres_file: Path) -> None:
    x = np.random.default_rng(1).random((1, 1, 10, 12), dtype=np.float32)
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("superres", [inp], request_id="r-1")
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 30 * 36 * 4
    assert np.abs(result.as_numpy("output") - local(superres_file, x)).max() <= 1e-5


def test_health_and_metadata_name_the_graphs_tensors(client: Any, server: Server) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("superres")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("superres")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 1, -1, -1]}]
    assert client.get_model_metadata("superres", model_version="1")["versions"] == ["1"]
    config = client.get_model_config("superres")
    assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [1, -1, -1]
    with pytest.raises(InferenceServerException, match="unknown model 'nope'; this server has superres"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="no version '2'"):
        client.get_model_metadata("superres", model_version="2")


@pytest.mark.parametrize(
    ("shape", "name", "datatype", "message"),
    [
        ((1, 1, 8, 8), "nope", "FP32", "unknown input 'nope'; the model takes input"),
        ((1, 3, 8, 8), "input", "FP32", "size 3 on axis 1, expected 1"),
        ((1, 8, 8), "input", "FP32", r"shape \(1, 8, 8\) \(rank 3\), expected rank 4"),
        ((1, 1, 8, 8), "input", "FP64", "has datatype FP64, the model takes FP32"),
    ],
    ids=["name", "shape", "rank", "dtype"],
)
def test_wrong_tensors_get_400_and_the_server_goes_on(
    client: Any, superres_file: Path, shape: tuple[int, ...], name: str, datatype: str, message: str
) -> None:
    x = np.zeros(shape, np.float64 if datatype == "FP64" else np.float32)
    for binary in (True, False):
        with pytest.raises(InferenceServerException, match=message) as info:
            infer(client, x, binary=binary, name=name, datatype=datatype)
        assert info.value.status() == "400"
    still_serving(client, superres_file)


def test_malformed_requests_get_the_protocols_error_json(server: Server, client: Any, superres_file: Path) -> None:
    url = "/v2/models/superres/infer"
    assert post(server, url, b"{not json")[0] == 400
    assert "not valid JSON" in post(server, url, b"{not json")[1]["error"]
    assert post(server, url, b'{"inputs": 3}') == (
        400,
        {"error": 'the request must be a JSON object with an "inputs" list'},
    )
    few = {"inputs": [{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": [1, 2, 3]}]}
    assert post(server, url, json.dumps(few).encode())[1]["error"].startswith("input 'input': 3 values for shape")
    head = json.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
            ]
        }
    ).encode()
    short = post(server, url, head + b"\0" * 8, {"Inference-Header-Content-Length": str(len(head))})
    assert short[0] == 400 and "binary_data_size 16" in short[1]["error"]
    assert post(server, url, head, {"Inference-Header-Content-Length": "99999"})[0] == 400
    assert post(server, "/v2/models/nope/infer", b"{}") == (
        404,
        {"error": "unknown model 'nope'; this server has superres"},
    )
    assert post(server, "/v2/nothing", b"")[0] == 404
    still_serving(client, superres_file)


def raw(server: Server, data: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(data)
        if not read:
            return b""
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
        return reply


def test_a_huge_body_gets_413_before_it_is_read(server: Server, client: Any, superres_file: Path) -> None:
    head = (
        f"POST /v2/models/superres/infer HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {200 << 20}\r\nConnection: close\r\n\r\n"
    )
    reply = raw(server, head.encode() + b"{" * 1000)
    assert reply.startswith(b"HTTP/1.1 413") and b"larger than 67108864 bytes" in reply
    still_serving(client, superres_file)


def test_clients_that_disconnect_mid_request_are_let_go(server: Server, client: Any, superres_file: Path) -> None:
    before = metric(server, "ferry_requests_total", 'code="499"')
    head = f"POST /v2/models/superres/infer HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: 100000\r\n\r\n"
    raw(server, head.encode() + b'{"inputs": [', read=False)  # closes with 99988 bytes unsent
    x = np.random.default_rng(3).random((1, 1, 64, 64), dtype=np.float32)
    body = json.dumps(
        {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    )
    request = (
        f"POST /v2/models/superres/infer HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    raw(server, request.encode(), read=False)  # gone before the answer
    deadline = time.monotonic() + 10
    while metric(server, "ferry_requests_total", 'code="499"') == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(server, "ferry_requests_total", 'code="499"') == before + 1
    still_serving(client, superres_file)


def test_requests_for_other_hosts_are_refused(server: Server) -> None:
    reply = raw(server, f"GET /v2 HTTP/1.1\r\nHost: evil.example:{server.port}\r\nConnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 403")
    ok = raw(server, f"GET /v2 HTTP/1.1\r\nHost: localhost:{server.port}\r\nConnection: close\r\n\r\n".encode())
    assert ok.startswith(b"HTTP/1.1 200")


def test_concurrent_requests_of_one_shape_are_batched(server: Server, superres_file: Path) -> None:
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"), concurrency=8)
    before = (metric(server, "ferry_batch_size_sum"), metric(server, "ferry_batch_size_count"))
    xs = [np.random.default_rng(k).random((1, 1, 32, 24), dtype=np.float32) for k in range(16)]
    pending = []
    for x in xs:
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        pending.append(client.async_infer("superres", [inp]))
    results = [p.get_result().as_numpy("output") for p in pending]
    client.close()
    for x, got in zip(xs, results, strict=True):  # every request gets its own rows back
        assert np.abs(got - local(superres_file, x)).max() <= 1e-5
    calls = metric(server, "ferry_batch_size_count") - before[1]
    requests = metric(server, "ferry_batch_size_sum") - before[0]
    assert requests == 16 and calls < 16, f"{requests} requests in {calls} calls"
    assert metric(server, "ferry_requests_total", 'endpoint="infer"') >= 16
    assert metric(server, "ferry_request_seconds_count", 'endpoint="infer"') >= 16


def test_limits_apply_and_the_batching_can_be_switched_off(superres_file: Path) -> None:
    with start("zoo:superres", max_batch=1, max_body_bytes=1 << 20, name="sr") as small:
        client = httpclient.InferenceServerClient(small.url.removeprefix("http://"))
        config = client.get_model_config("sr")
        assert config["max_batch_size"] == 0 and "dynamic_batching" not in config
        x = np.zeros((1, 1, 512, 600), np.float32)  # 1.2 MB of tensor
        with pytest.raises(InferenceServerException, match="larger than 1048576 bytes") as info:
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            client.infer("sr", [inp])
        assert info.value.status() == "413"
        y = np.random.default_rng(5).random((1, 1, 16, 16), dtype=np.float32)
        inp = httpclient.InferInput("input", list(y.shape), "FP32")
        inp.set_data_from_numpy(y)
        got = client.infer("sr", [inp]).as_numpy("output")
        assert np.abs(got - local(superres_file, y)).max() <= 1e-5
