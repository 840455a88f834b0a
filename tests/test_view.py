"""``ferry view`` serves Netron's page and the model, nothing else, to loopback only."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ferry.errors import UserError
from ferry.view import external_data_files, view
from tests.test_local_servers import SECRET, busy_port, plant_secrets, raw_get


def _model(folder: Path, *, external: bool = True) -> Path:
    """A 1x8 @ 8x8 MatMul; its weight in ``model.onnx.data`` when ``external``."""
    w = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    if external:
        onnx.save_model(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="model.onnx.data",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, path)
    return path


def _split(url: str) -> tuple[int, str]:
    parsed = urllib.parse.urlsplit(url)
    assert parsed.hostname == "127.0.0.1" and parsed.port
    return parsed.port, parsed.path


def test_view_serves_netron_the_model_and_its_external_data(tmp_path: Path) -> None:
    model = _model(tmp_path)
    with view(model, port=0, browse=False) as viewer:
        port, prefix = _split(viewer.url)
        assert viewer.address == ("127.0.0.1", port) and len(prefix) > 20  # a random path
        assert set(viewer.data_files) == {"model.onnx.data"}
        status, headers, page = raw_get(port, prefix)
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'<meta name="file" content="/data/model.onnx">' in page and b"netron" in page.lower()
        assert raw_get(port, prefix + "index.js")[0] == 200
        assert raw_get(port, prefix + "data/model.onnx")[2] == model.read_bytes()
        assert raw_get(port, prefix + "data/model.onnx.data")[2] == (tmp_path / "model.onnx.data").read_bytes()
        assert raw_get(port, prefix + "data/model.onnx", host=f"localhost:{port}")[0] == 200
    with pytest.raises(OSError):
        raw_get(port, prefix)  # stopped: the port is closed


def test_view_serves_nothing_else_from_the_models_folder_or_netrons(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = _model(folder)
    targets = plant_secrets(folder)
    with view(model, port=0, browse=False) as viewer:
        port, prefix = _split(viewer.url)
        for target in targets:
            for full in (
                prefix + "data/" + target,
                prefix + target,
                "/data/" + target,
                prefix + "data/%2e%2e/" + target,
            ):
                status, _, body = raw_get(port, full)
                assert SECRET not in body and (status == 404 or full.split("?")[0] == prefix), full
        for full in (
            "/",
            "/index.html",
            "/data/model.onnx",
            prefix + "data/",
            prefix + "server.py",
            prefix + "__init__.py",
        ):
            status, _, body = raw_get(port, full)
            assert status == 404 and b"onnx" not in body.lower(), full


@pytest.mark.parametrize(
    "host", [None, "evil.example", "evil.example:{port}", "127.0.0.1.rebind.example:{port}", "127.0.0.1:1"]
)
def test_view_refuses_requests_not_addressed_to_loopback(tmp_path: Path, host: str | None) -> None:
    model = _model(tmp_path, external=False)
    with view(model, port=0, browse=False) as viewer:
        port, prefix = _split(viewer.url)
        for target in (prefix, prefix + "data/model.onnx"):
            status, _, body = raw_get(port, target, host=None if host is None else host.format(port=port))
            assert status == 403 and b"onnx" not in body.lower()


def test_external_data_outside_the_models_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    model = _model(folder)
    proto = onnx.load(str(model), load_external_data=False)
    for location in ("../outside.bin", "/etc/passwd", "sub/../../outside.bin"):
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        with pytest.raises(UserError, match="outside the model's folder"):
            external_data_files(proto, model)
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")
    (tmp_path / "outside.bin").write_bytes(SECRET)
    proto.graph.initializer[0].external_data[0].value = "link.bin"
    with pytest.raises(UserError, match="outside the model's folder"):
        external_data_files(proto, model)


def test_busy_port_is_one_line_and_exit_1(cli, tmp_path: Path) -> None:
    model = _model(tmp_path, external=False)
    listener = busy_port()
    try:
        port = listener.getsockname()[1]
        res = cli("view", model, "--port", str(port), "--no-browse")
    finally:
        listener.close()
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1, res.err
    assert f"port {port} on 127.0.0.1 is in use" in res.err and "Traceback" not in res.err


@pytest.mark.parametrize("port", ["-1", "65536", "99999"])
def test_port_out_of_range_is_one_line_and_exit_1(cli, tmp_path: Path, port: str) -> None:
    res = cli("view", _model(tmp_path, external=False), "--port", port, "--no-browse")
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1 and "out of range" in res.err, res.err


def test_cli_prints_the_address_and_stops_on_ctrl_c(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ferry.cli.view.time.sleep", interrupt)
    res = cli("view", _model(tmp_path, external=False), "--port", "0", "--no-browse")
    assert res.code == 0, res.err
    url = res.out.split(" at ")[1].split()[0]
    port, prefix = _split(url)
    with pytest.raises(OSError):
        raw_get(port, prefix)  # stopped


def test_view_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        view(tmp_path / "none.onnx", browse=False)
