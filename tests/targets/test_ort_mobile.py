"""The ort-mobile target's manifest names every operator of its minimal-build config."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import ferry
from ferry.convert.ort import required_operators
from ferry.specs import parse_input_specs


class GatedFlat(nn.Module):
    """Conv, Relu, a Mul and an Add of two activations, a Reshape: after ORT's fusions the config
    has several operators on one line, with type information between them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)) * x + x
        return y.reshape(y.shape[0], -1)


def test_every_operator_of_the_config_is_in_the_manifest(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ferry.load_model(GatedFlat())
    result = ferry.package(model, tmp_path / "m", "ort-mobile", inputs=parse_input_specs(["batch=1,3,8,8"]))
    ops = result.manifest["required_operators"]
    assert {"Add", "Mul", "Reshape"} <= set(ops) and ("FusedConv" in ops or "Conv" in ops)
    assert ops == required_operators(tmp_path / "m" / "required_operators_and_types.config")


def test_config_lines_with_several_operators_opsets_and_type_information(tmp_path: Path) -> None:
    config = tmp_path / "ops.config"
    config.write_text(
        "# Generated from model/s:\n"
        'ai.onnx;13,14;Add{"inputs": {"0": ["float", "int64_t"]}},Cast{"inputs": {"0": ["float"]},'
        ' "outputs": {"0": ["int64_t"]}},Reshape,Mul{"inputs": {"0": ["float"]}}\n'
        "ai.onnx;11;Conv,DepthToSpace\n"
        "com.microsoft;1;FusedConv,Gelu\n"
    )
    assert required_operators(config) == ["Add", "Cast", "Conv", "DepthToSpace", "FusedConv", "Gelu", "Mul", "Reshape"]
