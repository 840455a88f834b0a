"""``ferry package --target triton``: a model repository that Triton's own ``ModelConfig`` protobuf
parses, and that ``ferry serve --repository`` serves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from google.protobuf import json_format, text_format

import ferry
from ferry.errors import UserError
from ferry.serve._repository import parse_text_format, read_repository
from ferry.specs import parse_input_spec
from tests.serve.conftest import start

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="grpcio is not installed (tritonclient's ModelConfig protobuf)"
)


def triton_config(path: Path) -> dict[str, object]:
    """config.pbtxt through Triton's protobuf: an unknown field or a bad value raises here."""
    message = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("triton") / "models"
    ferry.package("zoo:superres", folder, "triton")
    return folder


def test_the_repository_is_what_triton_reads(repository: Path) -> None:
    files = sorted(str(p.relative_to(repository)) for p in repository.rglob("*") if p.is_file())
    assert files == ["README.md", "manifest.json", "superres/1/model.onnx", "superres/config.pbtxt"]
    config = triton_config(repository / "superres" / "config.pbtxt")
    assert config == {
        "name": "superres",
        "backend": "onnxruntime",
        "max_batch_size": 8,
        "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": ["1", "-1", "-1"]}],
        "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": ["1", "-1", "-1"]}],
        "dynamic_batching": {},  # max_queue_delay_microseconds: 0, proto3's default
    }
    manifest = json.loads((repository / "manifest.json").read_text())
    assert manifest["target"] == "triton" and manifest["triton"]["model"] == "superres"
    assert set(manifest["files"]) == {"superres/config.pbtxt", "superres/1/model.onnx", "README.md"}
    readme = (repository / "README.md").read_text()
    assert "tritonserver --model-repository" in readme and "ferry serve --repository ." in readme


def test_a_static_batch_axis_means_no_batching_and_full_dims(tmp_path: Path, tiny: Callable[[str], str]) -> None:
    specs = [parse_input_spec("2,4"), parse_input_spec("2,5:int64:0:10")]
    ferry.package(tiny("TwoInTwoOut"), tmp_path / "m", "triton", inputs=specs)
    path = tmp_path / "m" / "TwoInTwoOut" / "config.pbtxt"
    config = triton_config(path)
    assert "max_batch_size: 0" in path.read_text() and "max_batch_size" not in config  # proto3: 0 is the default
    assert "dynamic_batching" not in config
    assert [(t["data_type"], t["dims"]) for t in config["input"]] == [
        ("TYPE_FP32", ["2", "4"]),
        ("TYPE_INT64", ["2", "5"]),
    ]  # type: ignore[index]


def test_ferrys_reader_agrees_with_tritons_protobuf(repository: Path) -> None:
    text = """
    # a config as Triton's docs write them: comments, repeated blocks, lists, enums
    name: "sr"
    platform: "onnxruntime_onnx"
    max_batch_size: 4
    input [ { name: "input" data_type: TYPE_FP32 dims: [ 1, -1, -1 ] } ]
    output { name: "output", data_type: TYPE_FP32, dims: [1, -1, -1] }
    instance_group [ { count: 2 kind: KIND_CPU } ]
    dynamic_batching { preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100 }
    parameters { key: "note" value: { string_value: "a \\"quoted\\" word" } }
    """
    ours = parse_text_format(text)
    theirs = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert ours["max_batch_size"] == [theirs.max_batch_size] and ours["platform"] == [theirs.platform]
    assert ours["input"][0]["dims"] == list(theirs.input[0].dims) and ours["output"][0]["data_type"] == ["TYPE_FP32"]
    assert ours["dynamic_batching"][0]["preferred_batch_size"] == list(theirs.dynamic_batching.preferred_batch_size)
    assert ours["parameters"][0]["value"][0]["string_value"] == [theirs.parameters["note"].string_value]
    (entry,) = read_repository(repository)
    assert (entry.name, entry.version, entry.max_batch_size, entry.dynamic_batching) == ("superres", "1", 8, True)


def test_ferry_serve_serves_the_repository(repository: Path, superres_file: Path) -> None:
    with start(None, repository=repository) as server:
        client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        assert client.get_model_metadata("superres")["inputs"][0]["shape"] == [-1, 1, -1, -1]
        config = client.get_model_config("superres")
        assert config["max_batch_size"] == 8 and config["dynamic_batching"] == {"max_queue_delay_microseconds": 0}
        x = np.random.default_rng(0).random((1, 1, 12, 16), dtype=np.float32)
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        got = client.infer("superres", [inp], model_version="1").as_numpy("output")
        import onnxruntime as ort

        want = ort.InferenceSession(str(superres_file), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
        assert np.abs(got - want).max() <= 1e-5
        assert "/upscale" in server.models["superres"].endpoints  # the task metadata travels in model.onnx


def test_repositories_ferry_cannot_serve_are_refused(tmp_path: Path, repository: Path) -> None:
    with pytest.raises(UserError, match="model repository not found"):
        read_repository(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no model folder"):
        read_repository(tmp_path / "empty")
    model = tmp_path / "repo" / "other"
    model.mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "other"\nbackend: "tensorrt"\n')
    with pytest.raises(UserError, match="backend 'tensorrt'; ferry serves ONNX models"):
        read_repository(tmp_path / "repo")
    (model / "config.pbtxt").write_text('name: "renamed"\nbackend: "onnxruntime"\n')
    with pytest.raises(UserError, match="names the model 'renamed' but its folder is 'other'"):
        read_repository(tmp_path / "repo")
    (model / "config.pbtxt").write_text('name: "other"\nbackend: "onnxruntime"\n')
    with pytest.raises(UserError, match=r"no version folder with model\.onnx"):
        read_repository(tmp_path / "repo")
    (model / "config.pbtxt").write_text("name: {")
    with pytest.raises(UserError, match="cannot read"):
        read_repository(tmp_path / "repo")
