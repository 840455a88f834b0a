"""Localization in nested models: the first diverging node, the module path it came from (stage ->
block -> downsample conv) and the model's source line, from either exporter's record."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn

import ferry
from ferry.compare import Tolerance
from ferry.specs import parse_input_specs
from ferry.verify import VerifyConfig
from ferry.verify._localize import locate_divergence, module_path


class Block(nn.Module):
    """A ResNet basic block: the shortcut is a downsample (1x1 conv + BatchNorm) when given."""

    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if downsample else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)


class TinyResNet(nn.Module):
    """Stages of blocks, as torchvision's ResNet names them (``layer3.0.downsample.0``)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, 1, 1)
        self.layer1 = nn.Sequential(Block(4, 4))
        self.layer2 = nn.Sequential(Block(4, 8, 2, downsample=True))
        self.layer3 = nn.Sequential(Block(8, 8, downsample=True), Block(8, 8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(torch.relu(self.stem(x)))))
        return self.fc(x.mean((2, 3)))


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    model = TinyResNet().eval()
    with torch.no_grad():  # BatchNorms that do something
        for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
            assert bn.running_mean is not None and bn.running_var is not None
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
    return model


SPECS = parse_input_specs(["batch=1,3,16,16"])
TARGET = "layer3.0.downsample.0"


def _scale_one_channel(path: Path, node: onnx.NodeProto, proto: onnx.ModelProto) -> None:
    """Scale output channel 3 of the node's weight in the file."""
    for init in proto.graph.initializer:
        if init.name == node.input[1]:
            weight = numpy_helper.to_array(init).copy()
            weight[3] *= 1.5
            init.CopyFrom(numpy_helper.from_array(weight, init.name))
    onnx.save(proto, str(path))


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_scaled_channel_of_a_nested_downsample_conv_is_blamed_on_it(
    tmp_path: Path, exporter: Literal["dynamo", "torchscript"]
) -> None:
    model = ferry.load_model(_resnet())
    good = tmp_path / "resnet.onnx"
    ferry.export(model, good, inputs=SPECS, config=ferry.ExportConfig(exporter=exporter))
    proto = onnx.load(str(good))
    modules = dict(model.module.named_modules())
    # the node computing the downsample conv (folded with its BatchNorm by either exporter)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    node = next(n for n in convs if module_path(n, modules) in (TARGET, "layer3.0.downsample.1"))
    bad = tmp_path / "resnet_bad.onnx"
    _scale_one_channel(bad, node, proto)

    report = ferry.verify(model, bad, inputs=SPECS, config=VerifyConfig(samples=1, other_shapes=False))
    assert not report.ok
    div = report.first_divergence
    assert div is not None and div["compared"] == "pytorch vs onnx", div
    assert (div["node"], div["op_type"], div["module"], div["module_class"]) == (node.name, "Conv", TARGET, "Conv2d")
    if exporter == "dynamo":  # the dynamo exporter records the stack: the block's line that calls it
        assert div["source"].startswith("test_localize.py:") and "self.downsample(x)" in div["source"]
        assert div["modules"] == [TARGET, "layer3.0.downsample.1"]  # the BatchNorm folded into it


def test_the_untouched_export_localizes_nothing(tmp_path: Path) -> None:
    module = _resnet()
    path = tmp_path / "resnet.onnx"
    ferry.export(ferry.load_model(module), path, inputs=SPECS)
    x = {"x": np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)}
    tol = Tolerance(1e-4, 1e-5)
    assert locate_divergence(path, x, backend="onnxruntime", module=module, tolerance=tol) is None


def _node(name: str, scopes: list[str] | None = None) -> onnx.NodeProto:
    node = helper.make_node("Relu", ["a"], ["b"], name=name)
    if scopes is not None:
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(scopes))
    return node


def test_module_paths_from_either_exporters_record() -> None:
    modules = {"", "layer1", "layer1.0", "layer1.0.relu", "layer3", "layer3.0", "layer3.0.downsample"}
    modules |= {"layer3.0.downsample.0", "blocks.0.mlp", "blocks.0", "relu"}
    # dynamo: every scope is a full path; the node's own name comes last
    assert module_path(_node("n", ["", "layer1", "layer1.0", "layer1.0.relu", "relu_1"])) == "layer1.0.relu"
    assert module_path(_node("n", ["", "layer1", "layer1.0", "layer1.0.relu@1", "relu_2"])) == "layer1.0.relu"
    assert module_path(_node("n", ["", "relu"])) == ""
    assert module_path(_node("n", ["relu"])) is None
    # TorchScript: names from the last non-numeric atom; a repeated call is name_N
    ts = "/layer3/layer3.0/downsample/downsample.0/Conv"
    assert module_path(_node(ts), modules) == module_path(_node(ts)) == "layer3.0.downsample.0"
    assert module_path(_node("/layer1/layer1.0/relu_1/Relu"), modules) == "layer1.0.relu"
    assert module_path(_node("/blocks.0/mlp/Gemm"), modules) == "blocks.0.mlp"  # a ModuleList (never called)
    assert module_path(_node("/Relu")) == ""
    assert module_path(_node("Relu_3")) is None


class PooledHead(nn.Module):
    """EfficientNet's head: an average pool whose kernel is larger than its input (ceil_mode)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(8, ceil_mode=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def _halved(proto: onnx.ModelProto, path: Path) -> Path:
    """The file with its output multiplied by 0.5 by a node added after the last module."""
    graph = proto.graph
    out = graph.output[0].name
    graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    for node in graph.node:
        node.output[:] = ["unhalved" if o == out else o for o in node.output]
    graph.node.append(helper.make_node("Mul", ["unhalved", "half"], [out], name="halve"))
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_node_the_reference_evaluator_gets_wrong_is_not_blamed(
    tmp_path: Path, exporter: Literal["dynamo", "torchscript"]
) -> None:
    module = PooledHead().eval()
    good = tmp_path / "pooled.onnx"
    specs = parse_input_specs(["1,3,4,4"])
    ferry.export(ferry.load_model(module), good, inputs=specs, config=ferry.ExportConfig(exporter=exporter))
    x = {"x": np.random.default_rng(0).random((1, 3, 4, 4), dtype=np.float32)}
    tol = Tolerance(1e-4, 1e-5)
    # onnx's reference AveragePool is wrong here; ONNX Runtime and PyTorch agree: nothing to blame
    untouched = locate_divergence(good, x, backend="onnxruntime", module=module, tolerance=tol)
    assert untouched is not None and untouched["compared"] == "none" and "node" not in untouched, untouched
    assert "reference evaluator is wrong" in untouched["hint"] and "AveragePool" in untouched["hint"]

    # past it, the node added after the last module is found through the model's outputs
    bad = _halved(onnx.load(str(good)), tmp_path / "halved.onnx")
    div = locate_divergence(bad, x, backend="onnxruntime", module=module, tolerance=tol)
    assert div is not None and (div["compared"], div["node"], div["op_type"]) == ("pytorch vs onnx", "halve", "Mul"), (
        div
    )
    assert "AveragePool" in div["hint"]


class Decoder(nn.Module):
    """A decode head that upsamples with a functional call: no module of its own to hook."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(4, 4, 1)
        self.fuse = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = nn.functional.interpolate(self.proj(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.fuse(torch.relu(up))


class Segmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.head = Decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)))


def _nearest(tmp_path: Path) -> Path:
    """A dynamo export of Segmenter whose Resize was switched to nearest."""
    good = tmp_path / "seg.onnx"
    ferry.export(ferry.load_model(Segmenter().eval()), good, inputs=parse_input_specs(["1,1,8,8"]))
    proto = onnx.load(str(good))
    for node in proto.graph.node:
        for attr in node.attribute:
            if node.op_type == "Resize" and attr.name == "mode":
                attr.s = b"nearest"
    bad = tmp_path / "seg_nearest.onnx"
    onnx.save(proto, str(bad))
    return bad


SEG_INPUT = {"x": np.random.default_rng(0).random((1, 1, 8, 8), dtype=np.float32)}


def test_a_functional_op_inside_a_modules_forward_is_found_op_by_op(tmp_path: Path) -> None:
    div = locate_divergence(
        _nearest(tmp_path), SEG_INPUT, backend="onnxruntime", module=Segmenter().eval(), tolerance=Tolerance(1e-4, 1e-5)
    )
    assert div is not None and (div["compared"], div["op_type"], div["module"]) == ("pytorch vs onnx", "Resize", "head")
    assert div["module_class"] == "Decoder" and "nn.functional.interpolate(" in div["source"], div


def test_without_the_models_program_module_outputs_are_compared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferry.verify import _fx

    def refuse(*_args: object) -> dict[str, np.ndarray]:
        raise RuntimeError("torch.export refused the model")

    bad = _nearest(tmp_path)
    monkeypatch.setattr(_fx, "op_values", refuse)
    div = locate_divergence(
        bad, SEG_INPUT, backend="onnxruntime", module=Segmenter().eval(), tolerance=Tolerance(1e-4, 1e-5)
    )
    # hooks see the upsampling only at the next module's output
    assert div is not None and (div["compared"], div["module"]) == ("pytorch vs onnx", "head.fuse"), div
    assert "torch.export refused the model" in div["notes"][0]
