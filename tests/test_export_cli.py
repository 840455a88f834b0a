"""``ferry export`` on the command line: the file's I/O as the file has it, one-line fallback
reasons, the exporters' output kept for ``--log`` and ``--debug``, and KV-cache models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_fallback_is_one_line_and_the_log_has_the_rest(cli, tmp_path: Path, tiny) -> None:
    log = tmp_path / "export.log"
    res = cli("export", tiny("SignBranch"), "-o", tmp_path / "s.onnx", "--input", "2,3", "--log", log)
    assert res.code == 0, res.err
    fallback = [line for line in res.out.splitlines() if "dynamo exporter failed" in line]
    assert len(fallback) == 1 or "if x.sum() > 0:" in res.out  # rich may wrap the one line
    assert "Traceback" not in res.out + res.err
    assert "input  x: float32[2, 3]  example 2x3" in res.out
    assert "output output: float32[2, 3]" in res.out
    assert "Traceback" in log.read_text()


def test_debug_lets_the_exporters_speak(cli, tmp_path: Path, tiny) -> None:
    res = cli("--debug", "export", tiny("SignBranch"), "-o", tmp_path / "s.onnx", "--input", "2,3")
    assert res.code == 0, res.err
    assert "trace might not generalize" in res.err


def test_json_has_the_files_dims(cli, tmp_path: Path, tiny) -> None:
    res = cli(
        "export", tiny("TinyConv"), "-o", tmp_path / "c.onnx", "--input", "batch=1,3,8,8", "--json", tmp_path / "e.json"
    )
    assert res.code == 0, res.err
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["graph"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 8, 8]}]
    assert data["graph"]["outputs"][0]["shape"] == ["batch", 2, 8, 8]
    assert data["kv_cache"] is None and data["notes"] == []


GPT2_FILE = """
import torch
from transformers import GPT2Config, GPT2LMHeadModel


def tiny_gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)
"""


@pytest.mark.slow  # an export and a verify of a tiny GPT-2, ~20 s
def test_gpt2_as_users_build_it_exports_with_its_cache_and_verifies(cli, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "lm.py").write_text(GPT2_FILE)
    source = f"{tmp_path / 'lm.py'}:tiny_gpt2"
    path = tmp_path / "gpt2.onnx"
    res = cli("export", source, "-o", path, "--input", "batch=1,seq=8:int64:0:100")
    assert res.code == 0, res.err
    assert "input  past_key_values.1.value: float32[batch, 2, past, 16]  example 1x2x8x16" in res.out
    assert "output present.0.key: float32[batch, 2, past + seq, 16]" in res.out
    res = cli("verify", source, path, "--samples", "1", "--json", tmp_path / "v.json")
    assert res.code == 0, res.out + res.err
    shapes = json.loads((tmp_path / "v.json").read_text())["shapes"]
    assert len({s["past_key_values.0.key"][2] for s in shapes}) >= 2
