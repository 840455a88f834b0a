"""``ferry.serve()`` itself: names, refused settings, the ``auto`` backend, a missing extra, a busy port."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ferry
from ferry.errors import MissingDependencyError, UserError
from ferry.serve import ServeConfig, default_name, serve
from ferry.superres import task as sr_task
from ferry.superres.runtime_choice import Candidate, RuntimeChoice


def test_default_names() -> None:
    assert default_name("zoo:superres") == "superres"
    assert default_name("models/sr x3.onnx") == "sr_x3"
    assert default_name("net.py:Upscaler") == "Upscaler"
    assert default_name("pkg.mod:make") == "make"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": None}, "give a model"),
        ({"model": "zoo:superres", "repository": "repo"}, "not both"),
        ({"model": "zoo:superres", "config": ServeConfig(max_batch=0)}, "--max-batch"),
        ({"model": "zoo:superres", "config": ServeConfig(timeout_s=0)}, "--timeout must be positive"),
        ({"model": "zoo:superres", "config": ServeConfig(name="a/b")}, "--name 'a/b'"),
    ],
)
def test_refused_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        serve(**kwargs)  # type: ignore[arg-type]


def test_a_missing_extra_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ferry\[serve\]'"):
        ferry.serve("zoo:superres")


def test_a_busy_port_is_one_line(superres_file: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}: .*try another --port"):
            serve(superres_file, ServeConfig(port=port, backend="onnxruntime"))


def test_auto_takes_the_upscale_choice_kept_to_fp32(monkeypatch: pytest.MonkeyPatch, superres_file: Path) -> None:
    """The task's measured choice, unless it computes in lower precision: then its fastest fp32 one."""
    asked: dict[str, object] = {}
    winner = ["openvino-default", "bf16"]

    def fake(path: object, **kwargs: object) -> RuntimeChoice:
        asked.update(kwargs)
        candidates = [
            Candidate("openvino-default", "bf16", "fp32", verified=True, median_ms=1.0),
            Candidate("onnxruntime", "fp32", "fp32", verified=True, median_ms=3.0),
            Candidate("onnxruntime-noopt", "fp32", "fp32", verified=True, median_ms=2.0),
        ]
        return RuntimeChoice(winner[0], winner[1], Path(str(path)), 3.0, candidates)

    monkeypatch.setattr("ferry.superres.runtime_choice.choose_runtime", fake)
    assert sr_task.serve_backend(superres_file, 0, None) == "onnxruntime-noopt" and asked["precision"] == "fp32"
    winner[:] = ["onnxruntime", "fp32"]
    with serve(superres_file, ServeConfig(port=0, max_batch=1)) as server:
        (served,) = server.models.values()
        assert served.backend == "onnxruntime" and served.name == superres_file.stem


def test_the_command_line_says_what_is_wrong_in_one_line(cli: Any) -> None:
    res = cli("serve")
    assert res.code == 1 and "give a model (zoo:NAME, file.py:Attr, an .onnx file) or --repository DIR" in res.err
    res = cli("serve", "zoo:superres", "--max-body-mb", "0")
    assert res.code == 1 and "--max-body-mb must be positive" in res.err


def test_a_model_without_a_task_gets_the_protocol_alone(tiny: Callable[[str], str]) -> None:
    import json
    import urllib.error
    import urllib.request

    import numpy as np
    import tritonclient.http as httpclient

    from ferry.specs import parse_input_spec

    specs = [parse_input_spec("batch=2,4"), parse_input_spec("batch=2,5:int64:0:10")]
    with serve(tiny("TwoInTwoOut"), ServeConfig(port=0, backend="onnxruntime"), inputs=specs) as server:
        (served,) = server.models.values()
        assert served.name == "TwoInTwoOut" and not served.endpoints and served.batcher.max_batch == 8
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        meta = client.get_model_metadata("TwoInTwoOut")
        assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
            ("x", "FP32", [-1, 4]), ("ids", "INT64", [-1, 5])
        ]  # fmt: skip
        x = np.random.default_rng(0).random((3, 4), dtype=np.float32)
        ids = np.arange(15, dtype=np.int64).reshape(3, 5) % 10
        inputs = [httpclient.InferInput("x", [3, 4], "FP32"), httpclient.InferInput("ids", [3, 5], "INT64")]
        inputs[0].set_data_from_numpy(x, binary_data=False)
        inputs[1].set_data_from_numpy(ids, binary_data=True)
        outputs = [httpclient.InferRequestedOutput(n, binary_data=n == "score") for n in ("score", "argmax")]
        result = client.infer("TwoInTwoOut", inputs, outputs=outputs)
        want = ferry.run(_export(tiny, specs), {"x": x, "ids": ids}).outputs
        assert np.abs(result.as_numpy("score") - want["score"]).max() <= 1e-5
        assert np.array_equal(result.as_numpy("argmax"), want["argmax"])
        index = json.loads(urllib.request.urlopen(server.url + "/", timeout=10).read())
        assert index["models"] == {"TwoInTwoOut": "/v2/models/TwoInTwoOut"} and index["endpoints"] == []
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(server.url + "/upscale", data=b"x", method="POST"))
        assert refused.value.code == 404 and json.loads(refused.value.read())["error"] == "no endpoint /upscale"


def _export(tiny: Callable[[str], str], specs: list[Any]) -> Path:
    """The same model exported here, to run on ONNX Runtime beside the server."""
    import tempfile

    path = Path(tempfile.mkdtemp()) / "two.onnx"
    ferry.export(tiny("TwoInTwoOut"), path, inputs=specs)
    return path
