from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ferry
from ferry.backends import REGISTRY
from ferry.errors import UserError
from ferry.run import save_outputs
from ferry.samples import read_arrays
from ferry.specs import parse_input_specs


def test_run_named_arrays(superres_onnx: Path) -> None:
    x = np.random.default_rng(0).random((1, 1, 20, 30), dtype=np.float32)
    res = ferry.run(superres_onnx, {"input": x})
    assert res.outputs["output"].shape == (1, 1, 60, 90)
    assert res.backend == "onnxruntime" and res.seconds > 0


def test_run_random_inputs_from_stored_specs_and_given_specs(superres_onnx: Path) -> None:
    assert ferry.run(superres_onnx).outputs["output"].shape == (1, 1, 672, 672)
    res = ferry.run(superres_onnx, specs=parse_input_specs(["2,1,8,8"]))
    assert res.outputs["output"].shape == (2, 1, 24, 24)


@pytest.mark.parametrize(
    ("feeds", "fragment"),
    [
        ({"wrong": np.zeros((1, 1, 8, 8), np.float32)}, "missing input"),
        ({"input": np.zeros((1, 1, 8, 8), np.float64)}, "dtype float64, expected float32"),
        ({"input": np.zeros((1, 8, 8), np.float32)}, "rank"),
        ({"input": np.zeros((1, 3, 8, 8), np.float32)}, "axis 1"),
    ],
)
def test_wrong_inputs_are_explained(superres_onnx: Path, feeds: dict[str, np.ndarray], fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        ferry.run(superres_onnx, feeds)


def test_npy_and_npz_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.ones(3))
    np.savez(tmp_path / "b.npz", ids=np.arange(4))
    feeds = read_arrays([str(tmp_path / "a.npy"), str(tmp_path / "b.npz")], ["x", "ids"])
    assert set(feeds) == {"x", "ids"}
    feeds = read_arrays([f"ids={tmp_path / 'a.npy'}"], ["x", "ids"])
    assert set(feeds) == {"ids"}
    with pytest.raises(UserError, match="not found"):
        read_arrays([str(tmp_path / "none.npy")], ["x"])
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="cannot read"):
        read_arrays([str(tmp_path / "bad.npy")], ["x"])


def test_save_outputs_is_atomic_npz(tmp_path: Path) -> None:
    path = save_outputs({"y": np.arange(3)}, tmp_path / "o.npz")
    with np.load(path) as z:
        assert z["y"].tolist() == [0, 1, 2]
    with pytest.raises(UserError, match=r"\.npz"):
        save_outputs({"y": np.arange(3)}, tmp_path / "o.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npz"]


def test_a_closed_session_refuses_to_run(superres_onnx: Path) -> None:
    x = np.zeros((1, 1, 8, 8), np.float32)
    with REGISTRY.get("onnxruntime").load(str(superres_onnx)) as session:
        assert session.run({"input": x}).outputs["output"].shape == (1, 1, 24, 24)
    with pytest.raises(UserError, match="onnxruntime session is closed; load the model again"):
        session.run({"input": x})
