from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from ferry.errors import UserError
from ferry.superres.train import TrainConfig, train_superres

pytest.importorskip("sporco", reason="sporco provides the monarch validation image: pip install 'ferry[train]'")


def _cfg(tmp: Path, name: str, **kw: object) -> TrainConfig:
    base = {"out": tmp / f"{name}.safetensors", "steps": 6, "batch_size": 4, "patch": 12, "eval_every": 0}
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_same_seed_same_weights_and_resume_is_exact(tmp_path: Path) -> None:
    a = train_superres(_cfg(tmp_path, "a"))
    b = train_superres(_cfg(tmp_path, "b"))
    wa, wb = load_file(str(a.weights)), load_file(str(b.weights))
    assert all((wa[k] == wb[k]).all() for k in wa)
    card = json.loads(a.card.read_text())
    assert card["validation"]["images"][0]["name"] == "chelsea"
    assert "chelsea" not in card["training_data"]["scikit-image"]

    # Interrupt a run after 3 of 6 steps, then resume it from its checkpoint.
    ckpt = tmp_path / "c.pt"

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_superres(_cfg(tmp_path, "c", checkpoint=ckpt, checkpoint_every=1), on_step=interrupt)
    assert not (tmp_path / "c.safetensors").exists()
    resumed = train_superres(_cfg(tmp_path, "c", checkpoint=ckpt, checkpoint_every=1))
    wc = load_file(str(resumed.weights))
    assert all((wa[k] == wc[k]).all() for k in wa)


def test_different_seed_differs_and_bad_settings(tmp_path: Path) -> None:
    a = load_file(str(train_superres(_cfg(tmp_path, "a", steps=2)).weights))
    b = load_file(str(train_superres(_cfg(tmp_path, "b", steps=2, seed=1)).weights))
    assert any((a[k] != b[k]).any() for k in a)
    with pytest.raises(UserError, match="scale"):
        train_superres(_cfg(tmp_path, "x", scale=5))


def test_edsr_architecture_l1_loss_and_fine_tuning_from_weights(tmp_path: Path) -> None:
    from importlib import resources

    shipped = resources.files("ferry.zoo") / "weights" / "superres_edsr_x3.safetensors"
    with resources.as_file(shipped) as init:
        tuned = train_superres(_cfg(tmp_path, "e", arch="edsr", loss="l1", lr=1e-6, steps=2, init=init))
        card = json.loads(tuned.card.read_text())
        start = load_file(str(init))
    after = load_file(str(tuned.weights))
    assert all((after[k] - start[k]).abs().max() < 1e-3 for k in start)  # it started from the weights
    assert card["trained_by"] == "ferry train superres --arch edsr --loss l1"
    assert (
        card["initialised_from"]["file"] == "superres_edsr_x3.safetensors"
        and len(card["initialised_from"]["sha256"]) == 64
    )
    assert tuned.evaluation.mean_gain > 2.0  # two tiny steps keep the trained model's quality
    with pytest.raises(UserError, match="unknown architecture 'vgg'"):
        train_superres(_cfg(tmp_path, "x", arch="vgg"))
    with pytest.raises(UserError, match="weights"):
        train_superres(_cfg(tmp_path, "x", init=tmp_path / "missing.safetensors"))


def test_train_cli(cli, tmp_path: Path) -> None:
    out = tmp_path / "w.safetensors"
    res = cli(
        "train",
        "superres",
        "-o",
        out,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--patch",
        "12",
        "--json",
        tmp_path / "t.json",
    )
    # Two steps cannot beat bicubic: the command says so with exit code 2, but writes the weights.
    assert res.code == 2
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert json.loads((tmp_path / "t.json").read_text())["steps"] == 2
