from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ferry.errors import UserError
from ferry.superres.train import ARCHITECTURES, TrainConfig, train_superres

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


def _span_cfg(tmp: Path, name: str, root: Path, **kw: object) -> TrainConfig:
    settings: dict[str, object] = {"arch": "span", "loss": "l1", "data": "wallpapers", "steps": 4, "eval_every": 2}
    return _cfg(tmp, name, wallpaper_root=root, **(settings | kw))


@pytest.mark.slow  # three short training runs, each scoring 27 images
def test_span_on_wallpapers_keeps_the_best_weights_and_lists_every_file(tmp_path: Path) -> None:
    from importlib import metadata

    from tests.superres.test_datasets import install_fake_wallpapers

    root = tmp_path / "root"
    install_fake_wallpapers(root)
    ckpt = tmp_path / "s.ckpt"
    res = train_superres(_span_cfg(tmp_path, "s", root, checkpoint=ckpt, checkpoint_every=1))
    card = json.loads(res.card.read_text())
    assert card["model"].startswith("SPANY") and res.steps == 4
    assert card["trained_by"] == "ferry train superres --arch span --loss l1 --data wallpapers"
    files = card["training_data"]["files"]
    assert {f["package"] for f in files} == {"scikit-image", "sporco", "lomiri-wallpapers-16.04"}
    assert all(len(f["sha256"]) == 64 and f["version"] and f["file"] for f in files)
    assert {f["version"] for f in files if f["package"] == "scikit-image"} == {metadata.version("scikit-image")}
    bridge = next(f for f in files if f["name"] == "Bridge_by_Sander_Klootwijk")
    assert bridge["version"] == "20.04.0-2" and bridge["file"].startswith("/usr/share/backgrounds/")
    val = card["validation_files"]
    assert [f["name"] for f in val][-3:] == ["chelsea", "coffee", "monarch"] and len(val) == 27
    assert {f["name"] for f in files}.isdisjoint({f["name"] for f in val})
    assert [s["name"] for s in card["validation"]["images"]] == [f["name"] for f in val]
    for key in ("psnr_gain_db", "ssim_gain"):
        assert set(card["validation"][key]) == {"mean", "median", "worst"}
    assert card["validation"]["psnr_gain_db"]["mean"] == pytest.approx(res.evaluation.mean_gain)
    assert [h["step"] for h in card["selection"]["history"]] == [2, 4]
    assert card["selection"]["best_step"] == res.best_step
    best = max(res.history, key=lambda h: h["gain"])
    assert res.best_step == best["step"] and card["selection"]["best_mean_gain_db"] == best["gain"]
    # The result is the best weights, which are also kept beside the checkpoint.
    weights, beside = load_file(str(res.weights)), load_file(str(tmp_path / "s.best.safetensors"))
    assert all((weights[k] == beside[k]).all() for k in weights)

    # An interrupted run resumes to the same history, best step and weights.
    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_superres(
            _span_cfg(tmp_path, "r", root, checkpoint=tmp_path / "r.ckpt", checkpoint_every=1), on_step=interrupt
        )
    resumed = train_superres(_span_cfg(tmp_path, "r", root, checkpoint=tmp_path / "r.ckpt", checkpoint_every=1))
    assert resumed.history == res.history and resumed.best_step == res.best_step
    again = load_file(str(resumed.weights))
    assert all((weights[k] == again[k]).all() for k in weights)
    with pytest.raises(UserError, match="--data"):
        train_superres(_span_cfg(tmp_path, "r", root, checkpoint=tmp_path / "r.ckpt", data="bundled"))


def test_the_best_scoring_weights_are_the_result_not_the_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.superres import train
    from ferry.superres.scoring import Evaluation, ImageScore

    gains = iter([0.5, 1.0, 0.2, 0.7])  # scorings at steps 2, 4, 6, then the final full-image one

    def fake_evaluate(runner: object, images: object, *, scale: int, border: int = 3) -> Evaluation:
        return Evaluation(scale, border, (ImageScore("x", (9, 9), 30.0 + next(gains), 30.0, 0.9, 0.8),))

    monkeypatch.setattr(train, "evaluate", fake_evaluate)
    ckpt = tmp_path / "b.ckpt"
    res = train_superres(_cfg(tmp_path, "b", arch="span", eval_every=2, checkpoint=ckpt))
    assert res.best_step == 4 and [h["step"] for h in res.history] == [2, 4, 6]
    assert res.evaluation.mean_gain == pytest.approx(0.7)
    last = torch.load(ckpt, weights_only=True)["model"]
    weights = load_file(str(res.weights))
    assert any((weights[k] != last[k]).any() for k in weights)
    assert all((weights[k] == v).all() for k, v in load_file(str(tmp_path / "b.best.safetensors")).items())


def test_train_cli_says_how_to_install_missing_wallpapers(cli, tmp_path: Path) -> None:
    res = cli(
        "train", "superres", "-o", tmp_path / "w.safetensors", "--steps", "2", "--data", "wallpapers",
        "--wallpaper-root", tmp_path,
    )  # fmt: skip
    assert res.code == 1
    assert "14 of the 14 training photos are not installed" in res.err
    assert "apt-get install --no-install-recommends lomiri-wallpapers-16.04" in res.err


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("scale", [2, 4])
def test_trainable_architectures_export_with_dynamic_height_and_width(arch: str, scale: int, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    import ferry
    from ferry.specs import parse_input_specs

    torch.manual_seed(0)
    model = ARCHITECTURES[arch][1](scale).eval()
    for p in model.parameters():  # the zero-initialised tails would hide the body
        torch.nn.init.normal_(p, std=0.05)
    res = ferry.export(model, tmp_path / "m.onnx", inputs=parse_input_specs(["batch=1,1,height=16,width=16"]))
    session = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    for shape in [(1, 1, 16, 16), (2, 1, 23, 37)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        with torch.inference_mode():
            want = model(torch.from_numpy(x)).numpy()
        assert got.shape == (shape[0], 1, shape[2] * scale, shape[3] * scale)
        assert float(np.abs(got - want).max()) < 1e-4


def test_each_source_gives_the_same_share_of_patches() -> None:
    from PIL import Image

    from ferry.superres.train import PatchSampler

    big, small = Image.new("RGB", (300, 300)), Image.new("RGB", (60, 60))
    by_area = PatchSampler([("a", big), ("b", small), ("c", small)], scale=3, patch=12)
    assert by_area.weights[:3].sum() > 0.9  # the big image's three pyramid levels
    mixed = PatchSampler([("a", big), ("b", small), ("c", small)], scale=3, patch=12, sources=["w", "b", "b"])
    assert len(mixed.weights) == len(by_area.weights) and mixed.weights.sum() == pytest.approx(1.0)
    assert mixed.weights[:3].sum() == pytest.approx(0.5) and mixed.weights[3:].sum() == pytest.approx(0.5)


@pytest.mark.parametrize("make", ["span", "edsr"])
def test_widen_computes_the_narrower_network_and_trains_the_new_channels(make: str) -> None:
    from ferry.zoo._y_upscaler import widen
    from ferry.zoo.edsr import EDSRY
    from ferry.zoo.span import SPANY

    def build(channels: int) -> torch.nn.Module:
        return SPANY(3, channels=channels) if make == "span" else EDSRY(3, channels=channels)

    torch.manual_seed(0)
    small, big = build(16), build(32)
    for p in small.parameters():  # a trained-looking network: the zero tail would hide the body
        torch.nn.init.normal_(p, std=0.1)
    big.load_state_dict(widen(big, small.state_dict()))
    x = torch.rand(2, 1, 19, 23)
    with torch.no_grad():
        assert torch.equal(small.eval()(x), big.eval()(x))
    loss = (big(x) - torch.rand(2, 1, 57, 69)).abs().mean()
    loss.backward()
    assert big.tail.weight.grad is not None and big.tail.weight.grad[:, 16:].abs().sum() > 0  # the new channels learn
    with pytest.raises(ValueError, match="narrower"):
        widen(small, big.state_dict())


def test_init_from_narrower_span_weights_grows_them(tmp_path: Path) -> None:
    from importlib import resources

    shipped = resources.files("ferry.zoo") / "weights" / "superres_span_x3.safetensors"
    with resources.as_file(shipped) as init:
        grown = train_superres(_cfg(tmp_path, "w", arch="span-w", loss="l1", lr=1e-7, steps=1, init=init))
        start = load_file(str(init))
    after = load_file(str(grown.weights))
    assert after["head.weight"].shape[0] == 48 and start["head.weight"].shape[0] == 32
    assert torch.allclose(after["tail.weight"][:, :32], start["tail.weight"], atol=1e-5)
    assert grown.evaluation.mean_gain > 2.0  # it starts as the trained narrower network
    with pytest.raises(UserError, match="cannot be widened"):
        train_superres(_cfg(tmp_path, "x", arch="span", init=tmp_path / "w.safetensors"))


def test_bf16_steps_train_fp32_weights_and_the_card_says_so(tmp_path: Path) -> None:
    fp32 = load_file(str(train_superres(_cfg(tmp_path, "f", steps=3)).weights))
    run = train_superres(_cfg(tmp_path, "b", steps=3, precision="bf16"))
    bf16 = load_file(str(run.weights))
    assert all(v.dtype == torch.float32 for v in bf16.values())
    # the same steps in another arithmetic: close to the fp32 run, not equal to it
    assert any((bf16[k] != fp32[k]).any() for k in fp32)
    assert all((bf16[k] - fp32[k]).abs().max() < 0.05 for k in fp32)
    assert json.loads(run.card.read_text())["config"]["precision"] == "bf16"
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        train_superres(_cfg(tmp_path, "x", precision="fp8"))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_bicubic_base_is_pytorch_bicubic_upscaling_borders_included(scale: int) -> None:
    import torch.nn.functional as F

    from ferry.zoo.span import SPANY

    untrained = ARCHITECTURES["span-b"][1](scale).eval()  # its tail starts at zero: the base alone
    x = torch.rand(2, 1, 13, 17)
    want = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert (untrained(x) - want).abs().max() < 1e-5
    assert "bicubic" not in untrained.state_dict()  # fixed, not learned: weights hold the same keys as span
    assert untrained.state_dict().keys() == SPANY(scale).state_dict().keys()
    with pytest.raises(ValueError, match="base"):
        SPANY(scale, base="lanczos")


def test_the_bicubic_base_stays_fp32_under_bf16_autocast() -> None:
    model = ARCHITECTURES["span-b"][1](3).eval()
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        fp32 = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x)
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 1e-6  # untrained: the base alone
