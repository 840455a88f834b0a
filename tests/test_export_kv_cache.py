"""Decoder LMs built as users build them (``use_cache=True``): exported as one decoding step with
the cache as named tensors, verified at several past lengths; ``kv_cache=False`` exports logits only.

The models are tiny transformers configs with random weights, built in code (no download).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import ferry
from ferry.errors import UserError
from ferry.export import ExportConfig
from ferry.onnx_file import read_metadata
from ferry.specs import parse_input_specs

transformers = pytest.importorskip("transformers")

VOCAB = 100
TOKENS = [f"batch=1,seq=6:int64:0:{VOCAB}"]


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=128, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config).eval()


def tiny_llama() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB,
        max_position_embeddings=128,
    )
    return transformers.LlamaForCausalLM(config).eval()


MODELS: dict[str, tuple[Callable[[], nn.Module], int, int]] = {
    # name: (builder, cache heads, head dim)
    "gpt2": (tiny_gpt2, 2, 16),
    "llama": (tiny_llama, 2, 8),
}


def _dims(vi: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_the_tiny_models_return_a_cache_object() -> None:
    """The premise: built as users build them, these models return a transformers cache."""
    from ferry.export._kv_cache import cache_key

    for build, _, _ in MODELS.values():
        with torch.inference_mode():
            out = build()(torch.zeros(1, 3, dtype=torch.long))
        assert cache_key(out) is not None


@pytest.mark.slow  # each export and verify takes ~10-20 s on a small CPU
@pytest.mark.parametrize("name", sorted(MODELS))
def test_decoder_exports_with_its_cache_and_verifies_at_several_past_lengths(tmp_path: Path, name: str) -> None:
    build, heads, head_dim = MODELS[name]
    path = tmp_path / f"{name}.onnx"
    result = ferry.export(build(), path, inputs=parse_input_specs(TOKENS))
    assert result.kv_cache == "past-present"
    past_names = [f"past_key_values.{i}.{kind}" for i in range(2) for kind in ("key", "value")]
    present_names = [n.replace("past_key_values", "present") for n in past_names]
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input_ids", *past_names]
    assert [o.name for o in proto.graph.output] == ["logits", *present_names]
    assert _dims(proto.graph.input[0]) == ["batch", "seq"]
    for vi in proto.graph.input[1:]:
        assert _dims(vi) == ["batch", heads, "past", head_dim]
    assert _dims(proto.graph.output[0]) == ["batch", "seq", VOCAB]
    for vi in proto.graph.output[1:]:
        assert _dims(vi) == ["batch", heads, "past + seq", head_dim]
    # The result reports the file as it is; the stored specs make the past a dynamic dim of its own.
    assert [str(d) for d in result.graph_inputs[1].shape] == ["batch", str(heads), "past", str(head_dim)]
    assert read_metadata(proto)["kv_cache"] == "past-present"
    assert [s.dynamic_axes for s in result.inputs[1:]] == [{0: "batch", 2: "past"}] * 4

    # One step fed the previous step's present tensors gives the logits of the whole sequence.
    session = ort.InferenceSession(str(path))
    ids = np.random.default_rng(0).integers(0, VOCAB, (1, 7), dtype=np.int64)
    empty = {n: np.zeros((1, heads, 0, head_dim), np.float32) for n in past_names}
    outs = session.run(None, {"input_ids": ids[:, :5], **empty})
    first = dict(zip([o.name for o in proto.graph.output], outs, strict=True))
    past = {n: first[p] for n, p in zip(past_names, present_names, strict=True)}
    second = session.run(None, {"input_ids": ids[:, 5:], **past})[0]
    with torch.inference_mode():
        whole = build()(torch.from_numpy(ids)).logits.numpy()
    np.testing.assert_allclose(second, whole[:, 5:], atol=1e-4)

    report = ferry.verify(
        build(), path, config=ferry.VerifyConfig(backends=("onnxruntime",), samples=1, localize=False)
    )
    assert report.ok, report.to_dict()
    past_lengths = {shape["past_key_values.0.key"][2] for shape in report.shapes}
    assert len(past_lengths) >= 2


@pytest.mark.slow  # one export, ~10 s
def test_no_cache_exports_logits_only_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "gpt2.onnx"
    result = ferry.export(
        tiny_gpt2(), path, inputs=parse_input_specs(["batch=2,seq=6:int64:0:100"]), config=ExportConfig(kv_cache=False)
    )
    assert result.kv_cache == "dropped"
    assert result.outputs == ("logits",)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["input_ids"]
    report = ferry.verify(
        tiny_gpt2(), path, config=ferry.VerifyConfig(backends=("onnxruntime",), samples=1, localize=False)
    )
    assert report.ok, report.to_dict()


def test_inputs_the_step_derives_itself_are_refused(tmp_path: Path) -> None:
    """The step takes no attention mask: it is derived from the past's length."""
    specs = parse_input_specs(["1,6:int64:0:100", "1,6:int64:0:2"])
    with pytest.raises(UserError, match=r"derives attention_mask .*--no-cache"):
        ferry.export(tiny_llama(), tmp_path / "l.onnx", inputs=specs)
    assert list(tmp_path.iterdir()) == []
