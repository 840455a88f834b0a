from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ferry import load_model
from ferry.errors import UserError
from ferry.models import named_inputs


def test_zoo_model_is_in_eval_mode_with_declared_inputs() -> None:
    m = load_model("zoo:superres")
    assert not m.module.training
    assert m.inputs[0].name == "input"
    assert m.inputs[0].dynamic_axes == {0: "batch", 2: "height", 3: "width"}


def test_unknown_zoo_name_lists_known_ones() -> None:
    with pytest.raises(UserError, match="known: alexnet, srresnet, superres"):
        load_model("zoo:nope")


def test_file_class_with_args(tiny) -> None:
    m = load_model(tiny("TinyConv"), args={"channels": 6})
    assert m.module.conv.out_channels == 6
    assert not m.module.training


def test_package_module_factory() -> None:
    m = load_model("ferry.zoo.espcn:SuperResolutionNet", args={"upscale_factor": 2})
    assert m.module.conv4.out_channels == 4


def test_same_source_gives_same_random_weights(tiny) -> None:
    a = load_model(tiny("TinyConv")).module.state_dict()
    b = load_model(tiny("TinyConv")).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_sources(tmp_path: Path, tiny) -> None:
    with pytest.raises(UserError, match="bad model source"):
        load_model("justaname")
    with pytest.raises(UserError, match="not found"):
        load_model(str(tmp_path / "missing.py") + ":X")
    with pytest.raises(UserError, match="no attribute 'Nope'"):
        load_model(tiny("Nope"))
    with pytest.raises(UserError, match="cannot import module"):
        load_model("no_such_package_xyz:Thing")


def test_safetensors_and_pt_weights_load(tmp_path: Path, tiny) -> None:
    source = load_model(tiny("TinyConv")).module
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(0.5)
    st, pt = tmp_path / "w.safetensors", tmp_path / "w.pt"
    save_file(source.state_dict(), str(st))
    torch.save(source.state_dict(), pt)
    for path in (st, pt):
        m = load_model(tiny("TinyConv"), weights=path)
        assert torch.all(m.module.conv.weight == 0.5)
        assert not m.module.training


class _Evil:
    def __reduce__(self):
        return (print, ("owned",))


def test_pickle_with_code_is_refused(tmp_path: Path, tiny) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"conv.weight": _Evil()}, fh)
    with pytest.raises(UserError, match="refused to load"):
        load_model(tiny("TinyConv"), weights=path)


def test_wrong_weights_are_reported(tmp_path: Path, tiny) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"something": torch.zeros(2)}, str(path))
    with pytest.raises(UserError, match="do not fit the model"):
        load_model(tiny("TinyConv"), weights=path)
    with pytest.raises(UserError, match="weights file not found"):
        load_model(tiny("TinyConv"), weights=tmp_path / "missing.safetensors")
    bad = tmp_path / "w.ckpt"
    bad.write_bytes(b"x")
    with pytest.raises(UserError, match="unsupported weights format"):
        load_model(tiny("TinyConv"), weights=bad)


def test_input_count_must_match_forward(tiny) -> None:
    from ferry.specs import parse_input_specs

    m = load_model(tiny("TwoInTwoOut"))
    with pytest.raises(UserError, match="needs 2 input"):
        named_inputs(m, parse_input_specs(["2,4"]))
    with pytest.raises(UserError, match="declares no inputs"):
        named_inputs(m, None)
    specs = named_inputs(m, parse_input_specs(["2,4", "2,5:int64:0:10"]))
    assert [s.name for s in specs] == ["x", "ids"]


def test_the_old_module_path_of_the_espcn_network_still_loads() -> None:
    """Sources written before the rename (``ferry.zoo.superres``) load the same class."""
    from ferry.zoo.espcn import SuperResolutionNet

    with pytest.warns(DeprecationWarning) if "ferry.zoo.superres" not in __import__("sys").modules else _nothing():
        m = load_model("ferry.zoo.superres:SuperResolutionNet", args={"upscale_factor": 2})
    assert type(m.module) is SuperResolutionNet


def _nothing():  # type: ignore[no-untyped-def]
    import contextlib

    return contextlib.nullcontext()


def test_every_trained_zoo_card_lists_its_training_and_validation_files_with_provenance() -> None:
    """Issue 16: name, package, version and SHA-256 of every file a shipped model was trained and
    validated on; the bundled ones match the files installed here when the versions agree."""
    import hashlib
    from importlib import metadata
    from pathlib import Path

    from ferry import zoo
    from ferry.errors import MissingDependencyError
    from ferry.images import package_data

    checked = 0
    for entry in zoo.REGISTRY:
        if not entry.trained:
            continue
        card = entry.card()
        for record in [*card["training_data"]["files"], *card["validation_files"]]:
            assert {"name", "package", "version", "file", "sha256"} <= set(record), (entry.name, record)
            module = {"scikit-image": "skimage", "sporco": "sporco"}.get(record["package"])
            if module is None or metadata.version(record["package"]) != record["version"]:
                continue  # a wallpaper photo (training machines only) or another package version
            try:
                path = package_data(module).parent.parent / record["file"]
            except MissingDependencyError:  # the package is not installed here
                continue
            assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == record["sha256"], record
            checked += 1
    assert checked >= 20
