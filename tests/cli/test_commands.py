"""Every command through the CLI entry point: outputs, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest


def test_version_and_help(cli) -> None:
    import ferry

    res = cli("--version")
    assert res.code == 0 and ferry.__version__ in res.out
    res = cli("--help")
    assert res.code == 0
    for command in ("demo", "export", "check", "inspect", "view", "run", "verify", "train", "zoo"):
        assert command in res.out


def test_usage_error_is_exit_1(cli) -> None:
    res = cli("export", "zoo:superres")
    assert res.code == 1
    assert "--output" in res.err


def test_export_check_inspect_run_verify(cli, tmp_path: Path, tiny) -> None:
    onnx_path = tmp_path / "conv.onnx"
    res = cli(
        "export",
        tiny("TinyConv"),
        "-o",
        onnx_path,
        "--input",
        "batch=1,3,height=16,width=16",
        "--arg",
        "channels=5",
        "--json",
        tmp_path / "export.json",
    )
    assert res.code == 0, res.err
    assert "dynamo exporter" in res.out
    meta = json.loads((tmp_path / "export.json").read_text())
    assert meta["inputs"][0]["dynamic"] == {"0": "batch", "2": "height", "3": "width"}

    res = cli("check", onnx_path)
    assert res.code == 0 and "valid" in res.out

    res = cli("inspect", onnx_path, "--json", "-")
    info = json.loads(res.out)
    assert info["ops"]["Conv"] == 2 and info["flops"]["total"] > 0

    res = cli("inspect", onnx_path, "--graph")
    assert "graph main_graph" in res.out and "[batch, 3, height, width]" in res.out

    np.save(tmp_path / "x.npy", np.ones((2, 3, 9, 7), np.float32))
    res = cli("run", onnx_path, "--input", tmp_path / "x.npy", "-o", tmp_path / "out.npz")
    assert res.code == 0, res.err
    with np.load(tmp_path / "out.npz") as z:
        assert z["output"].shape == (2, 2, 9, 7)

    res = cli("run", onnx_path, "--input", "1,3,4,4", "--json", "-")
    assert json.loads(res.out)["outputs"][0]["shape"] == [1, 2, 4, 4]

    res = cli(
        "verify",
        tiny("TinyConv"),
        onnx_path,
        "--arg",
        "channels=5",
        "--json",
        tmp_path / "v.json",
        "--report",
        tmp_path / "v.html",
    )
    assert res.code == 0, res.err
    assert "PASS" in res.out
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["ok"] and data["backends"]["onnxruntime"]["ok"]
    assert len(data["shapes"]) == 3
    assert (tmp_path / "v.html").is_file()


def test_verify_mismatch_exits_2(cli, tmp_path: Path, tiny) -> None:
    onnx_path = tmp_path / "s.onnx"
    assert cli("export", tiny("SignBranch"), "-o", onnx_path, "--input", "2,3").code == 0
    res = cli("verify", tiny("SignBranch"), onnx_path, "--json", tmp_path / "v.json")
    assert res.code == 2
    assert "FAIL" in res.out
    assert "parity check failed on onnxruntime" in res.err
    assert json.loads((tmp_path / "v.json").read_text())["ok"] is False


def test_export_fallback_is_printed(cli, tmp_path: Path, tiny) -> None:
    res = cli("export", tiny("SignBranch"), "-o", tmp_path / "s.onnx", "--input", "2,3")
    assert res.code == 0
    assert "dynamo exporter failed" in res.out and "TorchScript" in res.out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["export", "zoo:nope", "-o", "{tmp}/a.onnx"], "unknown zoo model 'nope'; known: alexnet, srresnet, superres"),
        (["check", "{tmp}/missing.onnx"], "ONNX file not found"),
        (["check", "{tmp}/corrupt.onnx"], "not a readable ONNX model"),
        (["run", "{tmp}/sr.onnx", "--input", "1,3,8,8"], "axis 1"),
        (["run", "{tmp}/sr.onnx", "--input", "{tmp}/missing.npy"], "input file not found"),
        (["export", "zoo:superres", "-o", "{tmp}/a.onnx", "--input", "1,x"], "bad dimension"),
        (["export", "zoo:superres", "-o", "{tmp}/a.onnx", "--weights", "{tmp}/evil.pth"], "refused to load"),
        (["verify", "zoo:superres", "{tmp}/sr.onnx", "--backends", "ort"], "unknown backend 'ort'"),
        (["inspect", "{tmp}/corrupt.onnx"], "not a readable ONNX model"),
        (["zoo", "info", "nope"], "unknown zoo model"),
        (["train", "nope"], "unknown training task"),
    ],
)
def test_user_errors_are_one_line_exit_1(
    cli, tmp_path: Path, superres_onnx: Path, args: list[str], fragment: str
) -> None:
    import pickle
    import shutil

    shutil.copy(superres_onnx, tmp_path / "sr.onnx")
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08garbage")

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "evil.pth", "wb") as fh:
        pickle.dump(Evil(), fh)
    res = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.code == 1, (res.out, res.err)
    assert fragment in res.err
    assert res.err.startswith("error:")
    assert "Traceback" not in res.err
    assert not (tmp_path / "a.onnx").exists()


def test_invalid_model_check_exits_1(cli, tmp_path: Path, superres_onnx: Path) -> None:
    proto = onnx.load(str(superres_onnx))
    proto.graph.node[0].input[0] = "nonexistent"
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    res = cli("check", tmp_path / "bad.onnx")
    assert res.code == 1
    assert "nonexistent" in res.err


def test_debug_shows_traceback(cli, tmp_path: Path) -> None:
    res = cli("--debug", "check", tmp_path / "missing.onnx")
    assert res.code == 1
    assert "Traceback" in res.err


def test_zoo_list_and_info(cli) -> None:
    res = cli("zoo", "list", "--json", "-")
    rows = {r["name"]: r for r in json.loads(res.out)}
    assert rows["superres"]["trained"] is True
    assert rows["alexnet"]["trained"] is False and rows["srresnet"]["trained"] is False
    res = cli("zoo", "list")
    assert "random" in res.out and "trained" in res.out
    res = cli("zoo", "info", "superres", "--json", "-")
    card = json.loads(res.out)["card"]
    assert card["validation"]["mean_gain_db"] >= 1.5
    assert "chelsea" not in json.dumps(card["training_data"])
    res = cli("zoo", "info", "superres")
    assert "chelsea" in res.out and "trained by" in res.out
    res = cli("zoo", "info", "superres_span")
    card = ferry_zoo_card("superres_span")["validation"]["psnr_gain_db"]
    lines = {ln.split("│")[1].strip(): ln for ln in res.out.splitlines() if ln.count("│") > 2}
    assert f"{card['median']:+.2f}" in lines["median gain"] and f"{card['worst']:+.2f}" in lines["worst gain"]
    assert "SSIM model" in res.out and "lomiri-wallpapers" in " ".join(res.out.split())


def ferry_zoo_card(name: str) -> dict:  # type: ignore[type-arg]
    from ferry import zoo

    return zoo.get(name).card()
