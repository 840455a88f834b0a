"""`ferry export --rgb-io`: the whole super-resolution pipeline in one uint8 RGB graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

import ferry
from ferry.superres import datasets
from ferry.superres.pipeline import super_resolve, torch_runner


def test_rgb_graph_matches_the_python_pipeline_on_photos(tmp_path: Path, cli) -> None:
    out = tmp_path / "sr_rgb.onnx"
    res = cli("export", "zoo:superres", "--rgb-io", "-o", out)
    assert res.code == 0, res.err
    proto = onnx.load(str(out))
    inp, outp = proto.graph.input[0], proto.graph.output[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["height", "width", 3]
    assert outp.type.tensor_type.elem_type == onnx.TensorProto.UINT8

    runner = torch_runner(ferry.load_model("zoo:superres").module)
    for name, img in datasets.validation_images()[:2]:
        graph = ferry.run(out, {"rgb": np.array(img)}).outputs["upscaled"]
        python = np.asarray(super_resolve(img, runner))
        assert graph.shape == python.shape == (img.height * 3, img.width * 3, 3)
        diff = np.abs(graph.astype(np.int16) - python.astype(np.int16))
        # Y is bit-exact with PIL; Cb/Cr tables differ from PIL's in about 1% of pixels.
        assert (diff <= 1).mean() > 0.99, name
        assert diff.max() <= 8, name


def test_rgb_graph_verifies_on_every_runtime(tmp_path: Path) -> None:
    out = tmp_path / "sr_rgb.onnx"
    ferry.export("zoo:superres", out, rgb_io=True, inputs=[ferry.parse_input_spec("height=40,width=48,3:uint8:0:256")])
    report = ferry.verify("zoo:superres", out, config=ferry.VerifyConfig(backends=("all",), samples=2))
    assert report.ok, report.to_dict()["backends"]
