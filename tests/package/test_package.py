from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.errors import UserError
from ferry.package.targets import TARGETS
from ferry.specs import parse_input_spec

SMALL = [parse_input_spec("batch=1,1,height=32,width=32").with_name("input")]
#: Targets that ship something other than the Y-channel model, with the test that runs them.
OWN_TESTS = {"web": "tests/targets/test_web.py (the uint8 RGB page, upscaling a photo in Chromium)"}


def _eager(x: np.ndarray) -> np.ndarray:
    import torch

    module = ferry.load_model("zoo:superres").module
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def _run_package(target: str, folder: Path, x: np.ndarray) -> np.ndarray:
    """Run the packaged artifact on its own runtime."""
    if target in ("onnx", "ort-mobile", "triton"):
        import onnxruntime as ort

        # triton: the repository's model folder (tests/serve/test_triton.py serves and parses it)
        name = {"onnx": "model.onnx", "ort-mobile": "model.ort", "triton": "superres/1/model.onnx"}[target]
        return ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    if target == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(folder / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return np.asarray(compiled(x)[0])
    if target == "mnn":
        import MNN.expr as F
        import MNN.nn

        from ferry.backends.mnn import WINOGRAD_LIMITED, WINOGRAD_MEMORY_LEVEL

        runtime = MNN.nn.create_runtime_manager(({"backend": "CPU", "precision": "high"},))
        runtime.set_hint(WINOGRAD_MEMORY_LEVEL, WINOGRAD_LIMITED)  # as the package's README says
        net = MNN.nn.load_module_from_file(str(folder / "model.mnn"), ["input"], ["output"], runtime_manager=runtime)
        out = F.convert(net.forward([F.const(x, list(x.shape), F.NCHW)])[0], F.NCHW)
        return np.array(out.read()).reshape(out.shape)
    if target == "ncnn":
        session = ferry.backends.get_backend("ncnn").load(folder / "model.ncnn.param", inputs=SMALL, outputs=["output"])
        return session.run({"input": x}).outputs["output"]
    if target == "litert":
        session = ferry.backends.get_backend("litert").load(folder / "model.tflite", inputs=SMALL, outputs=["output"])
        return session.run({"input": x}).outputs["output"]
    session = ferry.backends.get_backend("executorch").load(folder / "model.pte", inputs=SMALL, outputs=["output"])
    return session.run({"input": x}).outputs["output"]


def test_every_target_is_exercised() -> None:
    for target, test in OWN_TESTS.items():
        assert target in TARGETS.names() and Path(__file__).parents[2].joinpath(test.split()[0]).is_file()


@pytest.mark.parametrize("target", [t for t in TARGETS.names() if t not in OWN_TESTS])
def test_every_target_packages_superres_and_the_package_computes_the_same(tmp_path: Path, target: str) -> None:
    if not TARGETS.get(target).available():
        pytest.skip(f"{target}: its converter is not installed (pip install 'ferry[{TARGETS.get(target).extra}]')")
    folder = tmp_path / target
    result = ferry.package("zoo:superres", folder, target, inputs=SMALL)
    assert result and (folder / "manifest.json").is_file() and (folder / "README.md").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["target"] == target and manifest["source"] == "zoo:superres"
    static = manifest.get("static_shapes", False)
    assert manifest["task"]["preprocess"] == "y" and manifest["inputs"][0]["dynamic_axes"] == (
        {} if static else {"0": "batch", "2": "height", "3": "width"}
    )
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    # not the packaging size, except on static-shape targets (which say so in the manifest)
    x = np.random.default_rng(0).random((1, 1, 32, 32) if static else (1, 1, 40, 24), dtype=np.float32)
    np.testing.assert_allclose(_run_package(target, folder, x), _eager(x), atol=1e-4)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_ort_mobile_names_the_operators_a_minimal_build_needs(tmp_path: Path) -> None:
    result = ferry.package("zoo:superres", tmp_path / "m", "ort-mobile")
    assert {"Conv", "DepthToSpace"} <= set(result.manifest["required_operators"])


def test_existing_folders_unknown_targets_and_models_a_target_cannot_take(
    tmp_path: Path, superres_onnx: Path, tiny: Callable[[str], str]
) -> None:
    folder = tmp_path / "p"
    ferry.package(superres_onnx, folder, "onnx")
    with pytest.raises(UserError, match="not empty"):
        ferry.package(superres_onnx, folder, "onnx")
    assert ferry.package(superres_onnx, folder, "onnx", overwrite=True)
    with pytest.raises(UserError, match="unknown target 'tflite'; known: "):
        ferry.package(superres_onnx, tmp_path / "q", "tflite")
    if TARGETS.get("executorch").available():
        with pytest.raises(UserError, match="starts from the PyTorch model"):
            ferry.package(superres_onnx, tmp_path / "q", "executorch")
        with pytest.raises(UserError, match="ExecuTorch cannot lower the model"):
            ferry.package(tiny("SignBranch"), tmp_path / "q", "executorch", inputs=[parse_input_spec("2,3")])
        assert not (tmp_path / "q").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_package_cli(cli: Callable[..., object], tmp_path: Path) -> None:
    res = cli("package", "zoo:superres", "--target", "openvino", "-o", tmp_path / "ov", "--json", "-")
    if not TARGETS.get("openvino").available():
        assert res.code == 1 and "pip install 'ferry[openvino]'" in res.err  # type: ignore[attr-defined]
        return
    assert res.code == 0, res.err  # type: ignore[attr-defined]
    assert json.loads(res.out)["files"]["model.bin"] > 0  # type: ignore[attr-defined]
    bad = cli("package", "zoo:superres", "--target", "nope", "-o", tmp_path / "x")
    assert bad.code == 1 and "unknown target" in bad.err  # type: ignore[attr-defined]
