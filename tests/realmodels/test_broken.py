"""Deliberately broken files of real models: each must FAIL (also with two samples), localized to
the node that was broken and the module it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import ferry
from ferry.specs import parse_input_specs
from ferry.verify import VerifyConfig, VerifyReport
from ferry.verify._localize import module_path
from tests.realmodels.models import MODELS
from tests.realmodels.test_realmodels import exported, source

pytest.importorskip("transformers", reason="the real-model suite builds its models with transformers")
pytestmark = [pytest.mark.slow, pytest.mark.realmodels]

TWO = VerifyConfig(samples=2)


def verify(name: str, path: Path) -> VerifyReport:
    return ferry.verify(source(name), path, inputs=parse_input_specs(MODELS[name]), config=TWO)


def test_halved_logits_fail_at_the_added_node(tmp_path_factory: pytest.TempPathFactory) -> None:
    good = exported("efficientnet", tmp_path_factory.getbasetemp())
    proto = onnx.load(str(good))
    graph = proto.graph
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    for node in graph.node:
        node.output[:] = ["unhalved" if o == "logits" else o for o in node.output]
    graph.node.append(helper.make_node("Mul", ["unhalved", "half"], ["logits"], name="halve_logits"))
    bad = tmp_path_factory.mktemp("halved") / "efficientnet_halved.onnx"
    onnx.save(proto, str(bad))
    report = verify("efficientnet", bad)
    assert not report.ok
    div = report.first_divergence
    assert div is not None and div["node"] == "halve_logits", div


def test_a_scaled_channel_of_a_nested_shortcut_conv_is_blamed_on_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    good = exported("resnet", tmp_path_factory.getbasetemp())
    target = "resnet.encoder.stages.1.layers.0.shortcut.convolution"
    model = ferry.load_model(source("resnet"))
    modules = dict(model.module.named_modules())
    proto = onnx.load(str(good))
    # The exporter folds the shortcut's BatchNorm into its Conv: the node may carry either name.
    node = next(
        n
        for n in proto.graph.node
        if n.op_type == "Conv" and module_path(n, modules) in (target, target.replace("convolution", "normalization"))
    )
    for init in proto.graph.initializer:
        if init.name == node.input[1]:
            weight = numpy_helper.to_array(init).copy()
            weight[5] *= 1.5
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
    bad = tmp_path_factory.mktemp("scaled") / "resnet_scaled.onnx"
    onnx.save(proto, str(bad))
    report = verify("resnet", bad)
    assert not report.ok
    div = report.first_divergence
    assert div is not None and (div["node"], div["module"]) == (node.name, target), div


def test_training_mode_batchnorm_is_pointed_at(tmp_path: Path) -> None:
    model = ferry.load_model(source("MobileNetV3Tiny"))
    bad = tmp_path / "train.onnx"
    torch.onnx.export(
        model.module,
        (torch.randn(1, 3, 32, 32),),
        str(bad),
        dynamo=False,
        training=torch.onnx.TrainingMode.TRAINING,
        input_names=["x"],
        output_names=["output"],
    )
    model.module.eval()
    report = ferry.verify(model, bad, inputs=parse_input_specs(["1,3,32,32"]), config=TWO)
    assert not report.ok
    div = report.first_divergence
    assert div is not None and div["op_type"] == "BatchNormalization" and div["module"] == "stem.1", div
    assert "training mode" in div["hint"]


def test_a_changed_resize_mode_is_found_in_the_decode_head(tmp_path_factory: pytest.TempPathFactory) -> None:
    good = exported("segformer", tmp_path_factory.getbasetemp())
    proto = onnx.load(str(good))
    model = ferry.load_model(source("segformer"))
    modules = dict(model.module.named_modules())
    # Every upsampling of the decode head goes nearest (the first one keeps its size: a no-op).
    resizes = {n.name: n for n in proto.graph.node if n.op_type == "Resize"}
    for node in resizes.values():
        for attr in node.attribute:
            if attr.name == "mode":
                attr.s = b"nearest"
    bad = tmp_path_factory.mktemp("resize") / "segformer_nearest.onnx"
    onnx.save(proto, str(bad))
    report = verify("segformer", bad)
    assert not report.ok
    div = report.first_divergence
    assert div is not None and div["node"] in resizes and div["op_type"] == "Resize", div
    assert div["module"] == module_path(resizes[div["node"]], modules) and div["module"].startswith("decode_head"), div
