"""Validation before success: hostile, damaged and careless inputs end as one line and exit 1.

Every case runs through the library and/or the command line: never exit 3, never a traceback,
one line naming the problem and the fix, and nothing written when it fails.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import ferry
from ferry.errors import UnsupportedModelError, UserError
from ferry.specs import parse_input_spec, parse_input_specs

# --- helpers -------------------------------------------------------------------------------------


def _relu(
    path: Path, *, opset: int = 18, op: str = "Relu", domain: str = "", meta: dict[str, str] | None = None
) -> Path:
    """A one-node model x[1,4] -> y[1,4] (any op and domain, any metadata props)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=opsets)
    for key, value in (meta or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _one_line_error(res: Any, *fragments: str, progress: bool = False) -> None:
    """Exit 1 and one ``error:`` line on stderr (after the last state of a progress bar, with
    ``progress``)."""
    assert res.code == 1, (res.code, res.out, res.err)
    lines = res.err.strip().splitlines()
    if progress:
        lines = lines[-1:] if len(lines) > 1 and "error:" not in lines[0] else lines
    assert lines[0].startswith("error:"), res.err
    assert "Traceback" not in res.err and "internal error" not in res.err
    assert len(lines) == 1, res.err
    assert "\x1b" not in res.err
    for fragment in fragments:
        assert fragment in res.err, (fragment, res.err)


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(path)
    return path


# --- check and inspect ---------------------------------------------------------------------------


def test_check_refuses_an_opset_onnx_does_not_know(cli, tmp_path: Path) -> None:
    path = _relu(tmp_path / "op99.onnx", opset=99)
    res = ferry.check(path)
    assert not res and "opset ai.onnx 99" in res.message
    _one_line_error(cli("check", path), "not a released opset", "re-export")


def test_check_warns_on_an_operator_domain_that_is_not_onnx(cli, tmp_path: Path) -> None:
    path = _relu(tmp_path / "custom.onnx", op="Frob", domain="com.acme")
    res = ferry.check(path)
    assert res and res.warnings == [
        "operator domain 'com.acme' is not part of ONNX: only runtimes that implement it can run the model"
    ]
    out = cli("check", path)
    assert out.code == 0 and "com.acme" in out.err


@pytest.mark.parametrize("command", ["check", "inspect", "run"])
def test_an_empty_or_graphless_file_is_no_model(cli, tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _one_line_error(cli(command, empty), "is empty")
    graphless = tmp_path / "graphless.onnx"
    graphless.write_bytes(b"\x98\x06\x01")  # an unknown protobuf field: parses as an empty ModelProto
    _one_line_error(cli(command, graphless), "holds no graph")


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_fifos_devices_and_folders_are_refused_as_inputs(cli, tmp_path: Path, command: str) -> None:
    _one_line_error(cli(command, _fifo(tmp_path / "m.onnx")), "is a FIFO, not a regular file")
    if Path("/dev/zero").exists():
        _one_line_error(cli(command, "/dev/zero"), "is a device, not a regular file")
    _one_line_error(cli(command, tmp_path), "is a folder")


def test_inputs_that_are_not_regular_files_are_refused_by_every_reader(tmp_path: Path) -> None:
    from ferry.images import load_image
    from ferry.samples import read_arrays
    from ferry.weights import torch_load

    fifo = _fifo(tmp_path / "fifo.npy")
    for read in (lambda: read_arrays([str(fifo)], ["x"]), lambda: load_image(fifo), lambda: torch_load(fifo)):
        with pytest.raises(UserError, match="is a FIFO"):
            read()
    with pytest.raises(UserError, match="is a FIFO"):
        ferry.load_model(f"{fifo}:Net")


# --- ferry's metadata ----------------------------------------------------------------------------

BAD_METADATA = [
    {"ferry.inputs": "not json"},
    {"ferry.inputs": '{"name": 3}'},
    {"ferry.inputs": '[{"x": 1}]'},
    {"ferry.inputs": '[{"name": "x", "spec": "1,abc"}]'},
    {"ferry.inputs": '[{"name": "x", "spec": "1:int8:0:200"}]'},
    {"ferry.outputs": "[1, 2]"},
    {"ferry.task": '"a string"'},
    {"ferry.task": "[1]"},
    {"ferry.task": '{"kind": "super-resolution", "scale": "x"}'},
    {"ferry.task": '{"kind": 3}'},
    {"ferry.tolerance": '[1, "a"]'},
    {"ferry.optimized": "[]"},
    {"ferry.task": "[" * 100_000},
]


@pytest.mark.parametrize("meta", BAD_METADATA, ids=[next(iter(m.values()))[:30] for m in BAD_METADATA])
def test_malformed_ferry_metadata_is_a_user_error(cli, tmp_path: Path, meta: dict[str, str]) -> None:
    from PIL import Image

    path = _relu(tmp_path / "m.onnx", meta=meta)
    key = next(iter(meta))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), "gray").save(photo)
    for args in (
        ["run", path],
        ["optimize", path, "-o", tmp_path / "o.onnx"],
        ["package", path, "--target", "onnx", "-o", tmp_path / "pkg", "--input", "1,4"],
        ["upscale", photo, "-o", tmp_path / "up.png", "--model", path, "--backend", "onnxruntime"],
    ):
        res = cli(*args)
        assert res.code == 1, (args, res.err)
        assert "internal error" not in res.err and "Traceback" not in res.err
    _one_line_error(cli("run", path), f"{key} ", "malformed", "re-export")
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "pkg").exists()
    assert not (tmp_path / "up.png").exists()
    # inspect describes the file anyway and says what is wrong with its metadata
    info = ferry.inspect_model(path)
    assert any("ferry metadata ignored" in n for n in info.notes)
    res = cli("inspect", path)
    assert res.code == 0 and "ferry metadata ignored" in res.out


def test_well_formed_metadata_still_reads(superres_onnx: Path) -> None:
    from ferry import onnx_file

    proto = onnx_file.load(superres_onnx)
    assert onnx_file.metadata_problem(proto) is None
    assert onnx_file.stored_task(proto)["scale"] == 3
    assert [s.name for s in onnx_file.stored_specs(proto)] == ["input"]


# --- package -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: _relu(p, opset=99), "not a released opset"),
        (lambda p: _relu(p, op="Frobnicate"), "No Op registered for Frobnicate"),
    ],
    ids=["opset-99", "unknown-op"],
)
def test_the_onnx_target_refuses_a_model_that_does_not_load(cli, tmp_path: Path, make: Callable, fragment: str) -> None:
    path = make(tmp_path / "m.onnx")
    res = cli("package", path, "--target", "onnx", "-o", tmp_path / "pkg", "--input", "1,4")
    _one_line_error(res, "the onnx target", fragment)
    assert not (tmp_path / "pkg").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no staging folder left behind


def test_the_onnx_target_carries_external_data(tmp_path: Path) -> None:
    import onnxruntime as ort

    src = tmp_path / "src"
    src.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.full((4, 4), 0.5, np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(src / "m.onnx"), save_as_external_data=True, location="m.weights", size_threshold=0)
    specs = parse_input_specs(["1,4"])
    res = ferry.package(src / "m.onnx", tmp_path / "pkg", "onnx", inputs=specs)
    assert sorted(res.files) == ["README.md", "m.weights", "manifest.json", "model.onnx"]
    assert "m.weights" in res.manifest["files"]
    session = ort.InferenceSession(str(tmp_path / "pkg" / "model.onnx"))
    (out,) = session.run(None, {"x": np.ones((1, 4), np.float32)})
    assert np.allclose(out, 2.0)
    # the ORT-format target reads the weights too
    mobile = ferry.package(src / "m.onnx", tmp_path / "mobile", "ort-mobile", inputs=specs)
    assert "model.ort" in mobile.files


def test_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    from ferry.package.targets.base import external_data_files

    path = _relu(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    tensor = proto.graph.initializer.add()
    tensor.name, tensor.data_type, tensor.data_location = "w", TensorProto.FLOAT, TensorProto.EXTERNAL
    tensor.dims.append(4)
    tensor.external_data.add(key="location", value="../../etc/passwd")
    onnx.save(proto, str(path))
    with pytest.raises(UserError, match="outside the model's folder"):
        external_data_files(path)


def test_converter_failures_name_the_target_and_the_first_line(cli, tmp_path: Path) -> None:
    path = _relu(tmp_path / "m.onnx", opset=99)
    res = cli("package", path, "--target", "ort-mobile", "-o", tmp_path / "pkg", "--input", "1,4")
    _one_line_error(res, "the ort-mobile target", "Opset 99")
    assert "onnxruntime_src" not in res.err and "[ONNXRuntimeError]" not in res.err
    assert not (tmp_path / "pkg").exists()


def test_optimizer_failures_are_user_errors(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxslim

    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("\x1b[31monnxslim cannot take this graph\x1b[0m\nsecond line")

    monkeypatch.setattr(onnxslim, "slim", broken)
    path = _relu(tmp_path / "m.onnx")
    _one_line_error(cli("optimize", path, "-o", tmp_path / "o.onnx"), "onnxslim failed", "--no-simplify")
    assert not (tmp_path / "o.onnx").exists()
    with pytest.raises(UnsupportedModelError):
        ferry.optimize(path, tmp_path / "o.onnx")


# --- input specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("1:int8:0:200", "does not fit int8 (-128 to 127)"),
        ("1:uint8:-1:10", "does not fit uint8"),
        ("1:int64:0:" + "9" * 40, "does not fit int64"),
        (",".join(["1"] * 65), "at most 64"),
        ("100000,100000,100000", "over ferry's limit"),
        ("9" * 5000, "too large"),
    ],
)
def test_specs_are_bounded(cli, tmp_path: Path, spec: str, fragment: str) -> None:
    with pytest.raises(UserError, match=re.escape(fragment)):
        parse_input_spec(spec)
    res = cli("export", "zoo:superres", "-o", tmp_path / "a.onnx", "--input", spec)
    _one_line_error(res, fragment)
    assert not (tmp_path / "a.onnx").exists()


def test_full_int_ranges_are_accepted() -> None:
    rng = np.random.default_rng(0)
    for spec in ("4:int8:-128:128", "4:uint8:0:256", "4:int64:-9223372036854775808:9223372036854775808"):
        parsed = parse_input_spec(spec)
        assert parsed.sample(rng).dtype == np.dtype(parsed.dtype)


def test_samples_are_drawn_in_their_own_dtype() -> None:
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float16", "float64", "int8", "int32", "uint8", "bool"):
        spec = parse_input_spec(f"1000,1000:{dtype}")
        tracemalloc.start()
        data = spec.sample(rng, scale=2.0, offset=1.0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert data.dtype == np.dtype(dtype) and data.shape == (1000, 1000)
        # no float64 or int64 copy of the whole array: the peak is the array and one block
        assert peak <= data.nbytes + 2e6, (dtype, peak)
    assert parse_input_spec("2,3:bfloat16").sample(rng).dtype == np.float32


def test_samples_keep_the_values_of_one_whole_draw() -> None:
    """Drawn in blocks, a sample still holds the values (and leaves the generator in the state)
    of one draw of the whole array: seeds give the same inputs as before."""
    for text, draw in (
        ("3,300,301", lambda r: (r.standard_normal((3, 300, 301)) * 3.0 - 1.0).astype(np.float32)),
        ("700,300:int8:-128:128", lambda r: r.integers(-128, 128, (700, 300)).astype(np.int8)),
    ):
        one, blocks = np.random.default_rng([0, 1]), np.random.default_rng([0, 1])
        expected = draw(one)
        got = parse_input_spec(text).sample(blocks, scale=3.0, offset=-1.0)
        assert np.array_equal(got, expected)
        assert one.integers(0, 2**62) == blocks.integers(0, 2**62)


def test_a_sample_larger_than_the_limit_is_refused_before_allocating() -> None:
    spec = parse_input_spec("batch=1,3,height=8,width=8")
    assert spec.sample(np.random.default_rng(0)).shape == (1, 3, 8, 8)
    huge = spec.with_sizes({"height": 10**6, "width": 10**6})  # a shape variant can outgrow the example
    with pytest.raises(UserError, match="over ferry's limit"):
        huge.sample(np.random.default_rng(0))


def test_array_files_are_checked_from_their_header(tmp_path: Path) -> None:
    from ferry.samples import read_arrays

    huge = tmp_path / "huge.npy"
    with huge.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
        f.write(b"\0" * 16)
    with pytest.raises(UserError, match="over ferry's limit"):
        read_arrays([str(huge)], ["x"])
    np.save(tmp_path / "ok.npy", np.ones((2, 3), np.float32))
    truncated = tmp_path / "cut.npy"
    truncated.write_bytes((tmp_path / "ok.npy").read_bytes()[:-4])
    with pytest.raises(UserError, match="truncated"):
        read_arrays([str(truncated)], ["x"])
    assert read_arrays([str(tmp_path / "ok.npy")], ["x"])["x"].shape == (2, 3)


# --- caches --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "a string",
        {},
        {"backend": "onnxruntime", "precision": "fp32", "speedup": 1.0},
        {"backend": "onnxruntime", "precision": "fp32", "speedup": "fast", "candidates": []},
        {"backend": "onnxruntime", "precision": "fp32", "speedup": 1.0, "candidates": [1]},
        {"backend": "onnxruntime", "precision": "fp32", "speedup": 1.0, "candidates": [{"nope": 1}]},
        {
            "backend": "rm -rf",
            "precision": "fp32",
            "speedup": 1.0,
            "candidates": [{"backend": "rm -rf", "precision": "fp32", "file_kind": "fp32"}],
        },
    ],
)
def test_a_malformed_tuning_cache_entry_is_a_miss(tmp_path: Path, entry: Any) -> None:
    from ferry.superres.runtime_choice import _cached, _load_cache

    model = _relu(tmp_path / "m.onnx")
    assert _cached({"k": entry}, "k", model, tmp_path / "int8.onnx") is None
    good = {
        "backend": "onnxruntime",
        "precision": "fp32",
        "speedup": 1.0,
        "candidates": [{"backend": "onnxruntime", "precision": "fp32", "file_kind": "fp32"}],
    }
    choice = _cached({"k": good}, "k", model, tmp_path / "int8.onnx")
    assert choice is not None and choice.cached and choice.file == model
    cache_file = tmp_path / "runtime-choice.json"
    for text in ("{", "[]", "\xff\xfe", json.dumps({"k": entry})):
        cache_file.write_text(text, encoding="latin-1")
        assert isinstance(_load_cache(cache_file), dict)


def test_a_corrupt_cached_model_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry.cache import cached_export, usable_cached_model
    from ferry.errors import FerryWarning

    monkeypatch.setenv("FERRY_CACHE_DIR", str(tmp_path / "cache"))
    loaded = ferry.load_model("zoo:superres")
    path = cached_export(loaded)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.warns(FerryWarning, match="damaged"):
        again = cached_export(loaded)
    assert again == path and path.read_bytes() == good
    garbage = tmp_path / "cache" / "models" / "x-int8.onnx"
    garbage.write_bytes(b"\x08garbage")
    with pytest.warns(FerryWarning):
        assert not usable_cached_model(garbage)
    assert not garbage.exists()


# --- the user's own code -------------------------------------------------------------------------

USER_CODE = """
import sys
from torch import nn

class RaisesInInit(nn.Module):
    def __init__(self):
        super().__init__()
        raise ValueError("my init is broken")

class ExitsInInit(nn.Module):
    def __init__(self):
        super().__init__()
        sys.exit(4)
"""


@pytest.mark.parametrize(
    ("attr", "body", "fragment"),
    [
        ("RaisesInInit", USER_CODE, "building"),
        ("ExitsInInit", USER_CODE, "called sys.exit(4)"),
        ("Net", "import sys\nsys.exit(3)\n", "called sys.exit(3)"),
        ("Net", "raise RuntimeError('\\x1b[31mboom\\x1b[0m')\n", "RuntimeError: boom"),
    ],
)
def test_errors_of_the_users_model_code_are_theirs(cli, tmp_path: Path, attr: str, body: str, fragment: str) -> None:
    model = tmp_path / "user_model.py"
    model.write_text(body)
    res = cli("export", f"{model}:{attr}", "--input", "1,4", "-o", tmp_path / "out.onnx")
    _one_line_error(res, fragment)
    assert "report it" not in res.err
    assert not (tmp_path / "out.onnx").exists()
    with pytest.raises(UserError):
        ferry.load_model(f"{model}:{attr}")
    assert str(tmp_path) not in sys.path


# --- weights and checkpoints ---------------------------------------------------------------------


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo owned",))


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    import io

    import torch

    files = {name: tmp_path / f"{name}.pth" for name in ("hostile", "empty", "truncated", "garbage")}
    torch.save({"model": _Evil()}, files["hostile"])
    files["empty"].write_bytes(b"")
    buffer = io.BytesIO()
    torch.save({"a": torch.zeros(100)}, buffer)
    files["truncated"].write_bytes(buffer.getvalue()[:300])
    files["garbage"].write_bytes(b"hello world garbage" * 10)
    return files


@pytest.mark.parametrize("kind", ["hostile", "empty", "truncated", "garbage"])
def test_weights_files_that_cannot_be_loaded(cli, tmp_path: Path, kind: str) -> None:
    path = _hostile_files(tmp_path)[kind]
    res = cli("export", "zoo:superres", "-o", tmp_path / "a.onnx", "--weights", path)
    _one_line_error(res, str(path))
    assert "weights_only" not in res.err
    assert not res.err.rstrip().endswith(":")  # says what is wrong, not "cannot read ...: "
    assert not (tmp_path / "a.onnx").exists()


@pytest.mark.parametrize("kind", ["hostile", "empty", "truncated", "garbage", "wrong", "folder"])
def test_train_refuses_a_checkpoint_it_cannot_resume(cli, tmp_path: Path, kind: str) -> None:
    import torch

    files = _hostile_files(tmp_path)
    if kind == "wrong":
        files[kind] = tmp_path / "wrong.pth"
        torch.save({"config": {"scale": 3, "seed": 0}, "model": {"x": torch.zeros(1)}, "step": 1}, files[kind])
    if kind == "folder":
        files[kind] = tmp_path / "ckpt"
        files[kind].mkdir()
    ckpt = files[kind]
    out = tmp_path / "w.safetensors"
    res = cli("train", "superres", "-o", out, "--checkpoint", ckpt, "--steps", "2", "--batch-size", "2")
    _one_line_error(res, str(ckpt), progress=True)
    assert "weights_only" not in res.err
    assert not out.exists()


# --- images --------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_bomb(path: Path, width: int, height: int, *, bits: int = 16) -> Path:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with a few bytes of IDAT."""
    header = struct.pack(">IIBBBBB", width, height, bits, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + _chunk(b"IEND", b"")
    )
    return path


def test_the_16_bit_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    from ferry.superres import deep16

    bomb = _png_bomb(tmp_path / "bomb.png", 14_000, 14_000)  # 196 Mpx: 1.2 GB of 16-bit RGB
    assert deep16.is_deep_rgb(bomb)
    tracemalloc.start()
    with pytest.raises(UserError, match=r"14000x14000 pixels \(196 Mpx\), over the limit of 179 Mpx"):
        deep16.read(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10e6


def test_the_16_bit_tiff_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    import tifffile

    from ferry.superres import deep16

    bomb = tmp_path / "bomb.tif"
    tifffile.imwrite(bomb, shape=(14_000, 14_000, 3), dtype=np.uint16, photometric="rgb")  # a sparse file
    with pytest.raises(UserError, match="over the limit"):
        deep16.read(bomb)


def test_the_8_bit_bomb_gets_the_same_limit(tmp_path: Path) -> None:
    from ferry.images import load_image

    with pytest.raises(UserError, match="over the limit of 179 Mpx"):
        load_image(_png_bomb(tmp_path / "bomb8.png", 14_000, 14_000, bits=8))


def test_normal_16_bit_images_still_read(tmp_path: Path) -> None:
    import png
    import tifffile

    from ferry.superres import deep16

    pixels = (np.arange(5 * 7 * 3).reshape(5, 7 * 3) * 300).astype(np.uint16)
    with (tmp_path / "a.png").open("wb") as f:
        png.Writer(7, 5, greyscale=False, bitdepth=16).write(f, pixels)
    tifffile.imwrite(tmp_path / "a.tif", pixels.reshape(5, 7, 3), photometric="rgb")
    for name in ("a.png", "a.tif"):
        img = deep16.read(tmp_path / name)
        assert img.pixels.shape == (5, 7, 3) and img.pixels.dtype == np.uint16
        assert np.array_equal(img.pixels.reshape(5, 21), pixels)


def test_a_truncated_16_bit_png_is_a_user_error(tmp_path: Path) -> None:
    import png

    from ferry.superres import deep16

    with (tmp_path / "a.png").open("wb") as f:
        png.Writer(64, 64, greyscale=False, bitdepth=16).write(f, np.ones((64, 192), np.uint16) * 7)
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="cannot read image"):
        deep16.read(tmp_path / "cut.png")


def test_upscale_refuses_the_16_bit_bomb(cli, tmp_path: Path) -> None:
    bomb = _png_bomb(tmp_path / "bomb.png", 14_000, 14_000)
    res = cli("upscale", bomb, "-o", tmp_path / "out.png", "--backend", "onnxruntime")
    assert res.code == 1, res.err
    assert "179 Mpx" in res.out + res.err and "internal error" not in res.err
    assert not (tmp_path / "out.png").exists()


def test_eval_refuses_a_photo_too_small_to_score(cli, tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (12, 12), "white").save(folder / "tiny.png")
    _one_line_error(cli("eval", "superres", folder), "tiny.png is 12x12", "at least 18x18")
    _one_line_error(cli("eval", "superres", folder, "--border", "-1"), "--border")


class _Exits(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise SystemExit(3)


def test_a_model_that_calls_sys_exit_is_the_users_error(tmp_path: Path, tiny: Any) -> None:
    import ferry
    from ferry.errors import UserError
    from ferry.specs import parse_input_specs

    with pytest.raises(UserError, match=r"sys.exit\(3\)"):
        ferry.export(_Exits(), tmp_path / "m.onnx", inputs=parse_input_specs(["2,3"]))
    good = tmp_path / "t.onnx"
    ferry.export(tiny("TinyConv"), good, inputs=parse_input_specs(["1,3,8,8"]))
    with pytest.raises(UserError, match="SystemExit"):
        ferry.verify(_Exits(), good)
    assert not (tmp_path / "m.onnx").exists()


def test_upscale_refuses_a_fifo_negative_writers_and_a_task_without_scale(tmp_path: Path, cli: Any) -> None:
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    res = cli("upscale", fifo, "-o", tmp_path / "out.png")
    assert res.code == 1 and "pipe.png" in res.err
    photo = tmp_path / "p.png"
    Image.new("RGB", (24, 24), (90, 120, 150)).save(photo)
    res = cli("upscale", photo, "-o", tmp_path / "o.png", "--writers", "-1")
    assert res.code == 1 and "--writers" in res.err
    from ferry.onnx_file import write_metadata

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    write_metadata(proto, {"task": {"kind": "super-resolution"}})  # no scale
    onnx.save(proto, tmp_path / "noscale.onnx")
    res = cli("upscale", photo, "-o", tmp_path / "o2.png", "--model", tmp_path / "noscale.onnx")
    assert res.code == 1 and "scale" in res.err, res.err


def test_a_model_that_does_not_scale_as_its_metadata_says_fails_the_file(tmp_path: Path, cli: Any) -> None:
    from ferry.onnx_file import write_metadata

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    write_metadata(proto, {"task": {"kind": "super-resolution", "scale": 3}})  # claims x3, returns x1
    onnx.save(proto, tmp_path / "x1.onnx")
    photo = tmp_path / "p.png"
    Image.new("RGB", (24, 16), (90, 120, 150)).save(photo)
    res = cli("upscale", photo, "-o", tmp_path / "o.png", "--model", tmp_path / "x1.onnx", "--backend", "onnxruntime")
    assert res.code == 1 and "not x3" in res.err, res.err
    assert not (tmp_path / "o.png").exists()
