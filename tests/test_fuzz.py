"""Property-based tests (hypothesis) of every reader of untrusted input.

Random, truncated and bit-flipped files and near-valid structured input go through the input
spec parser, the ``ferry.*`` ONNX metadata reader, the caches, the image loaders (and ``ferry
upscale``) and the ``.npy``/``.npz`` reader. A reader may accept its input or refuse it, but a
refusal is a :class:`~ferry.errors.FerryError` (exit 1 on the command line), never another
exception type, and nothing is written on the way. Examples found by these properties are kept
with ``@example``.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import png
import pytest
import tifffile
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ferry import onnx_file
from ferry.cache import usable_cached_model
from ferry.check import check
from ferry.errors import FerryError, FerryWarning
from ferry.images import load_image, max_pixels
from ferry.samples import read_arrays
from ferry.specs import DTYPES, INT_DTYPES, MAX_RANK, InputSpec, parse_input_specs
from ferry.superres import deep16
from ferry.superres import runtime_choice as rc
from ferry.superres.upscale import open_image as upscale_open

#: examples per property, few enough that the whole file takes about half a minute on two busy cores
FUZZ = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(FUZZ, max_examples=80)


def _refused_only(read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or ``None`` when it refused with a FerryError; any other exception fails."""
    try:
        return read(*args)
    except FerryError:
        return None


def _files(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def _damage(data: bytes, cut: int | None, flips: Sequence[tuple[int, int]]) -> bytes:
    """``data`` with bytes overwritten (offsets wrap around its length), then cut to ``cut`` bytes."""
    damaged = bytearray(data)
    for offset, value in flips:
        damaged[offset % len(damaged)] = value
    return bytes(damaged[:cut] if cut is not None else damaged)


_cuts = st.one_of(st.none(), st.integers(0, 4096))
_flips = st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=6)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the examples of this file write their inputs into (module scope: hypothesis
    runs many examples per test)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def cli_main() -> Callable[[list[str]], int]:
    """``ferry ARGS`` in this process, returning the exit code."""
    from ferry.cli import main

    return main


# --- input specs ---------------------------------------------------------------------------------

_sizes = st.one_of(st.integers(0, 9), st.integers(0, 2**70), st.sampled_from([10**18, 10**19, 2**63, 2**64]))
_dim_names = st.one_of(
    st.none(),
    st.sampled_from(["batch", "height", "width", "1a", "a b", "", "x"]),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,4}", fullmatch=True),
)
_dtypes = st.one_of(st.sampled_from(DTYPES), st.sampled_from(["", " int8", "float", "object", "complex64", "uint64"]))
_bounds = st.one_of(
    st.integers(-300, 300), st.integers(-(2**70), 2**70), st.sampled_from(["", "+1", "-0", "1e3", "x", "9" * 30, "٣"])
)


@st.composite
def near_valid_specs(draw: st.DrawFn) -> str:
    """``dims[:dtype[:low:high]]`` with sizes, names, dtypes and bounds around and past the limits."""
    dim = st.tuples(_dim_names, _sizes)
    dims = draw(st.one_of(st.lists(dim, max_size=8), st.lists(dim, min_size=MAX_RANK - 1, max_size=MAX_RANK + 2)))
    text = draw(st.sampled_from([",", "x", ", "])).join(f"{n}={s}" if n is not None else str(s) for n, s in dims)
    if draw(st.booleans()):
        text += ":" + draw(_dtypes)
        text += "".join(f":{draw(_bounds)}" for _ in range(draw(st.integers(0, 3))))
    return text


def _check_specs(texts: list[str]) -> None:
    specs: list[InputSpec] | None = _refused_only(parse_input_specs, texts)
    for spec in specs or []:
        assert len(spec.dims) <= MAX_RANK
        if spec.dtype in INT_DTYPES and spec.low is not None and spec.high is not None:
            info = np.iinfo(spec.dtype)
            assert info.min <= spec.low < spec.high <= info.max + 1
        if int(np.prod(spec.shape, dtype=object)) <= 4096:  # small ones: drawn in their own dtype
            sample = spec.sample(np.random.default_rng(0))
            assert sample.shape == spec.shape
            assert sample.dtype == np.dtype("float32" if spec.dtype == "bfloat16" else spec.dtype)


@FUZZ
@given(st.one_of(st.text(), st.text(alphabet="0123456789,:x=-+ _abhintfloatuINT٣")))
@example("1" + ",1" * MAX_RANK)
@example("2:int8:0:200")
@example("1:uint8:0:256")
@example("1:int64:-9223372036854775809:0")
@example("9" * 19)
def test_any_text_is_a_spec_or_a_user_error(text: str) -> None:
    _check_specs([text])


@FUZZ
@given(st.lists(near_valid_specs(), min_size=1, max_size=3))
def test_near_valid_specs_parse_within_the_limits_or_are_refused(texts: list[str]) -> None:
    _check_specs(texts)


# --- the ferry.* metadata of ONNX files ----------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
_spec_values = st.one_of(st.sampled_from(["1,3", "batch=1,3", "2:int64:0:10", "2:int8:0:200", "0", ""]), _json)
_entries = st.lists(
    st.fixed_dictionaries({}, optional={"name": st.one_of(st.just("x"), _json), "spec": _spec_values}), max_size=3
)
_numbers = st.one_of(st.integers(-5, 100), st.floats(), st.booleans(), st.just(10**400), st.text(max_size=3))
_task = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.one_of(st.just("super-resolution"), _json),
        "scale": _numbers,
        "preprocess": st.one_of(st.just("y"), _json),
        "io": st.one_of(st.just("rgb-uint8"), _json),
    },
)
_raw_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1" * 5000, "[" * 100_000, '{"a":' * 3000, "NaN", "-Infinity", "1e999", '"\\ud800"']),
)
_values = st.one_of(_raw_values, st.one_of(_json, _entries, _task, st.lists(_numbers, max_size=3)).map(json.dumps))
_keys = st.one_of(
    st.sampled_from(["inputs", "outputs", "task", "tolerance", "optimized", "source"]), st.text(max_size=6)
)
_metadata = st.dictionaries(_keys, _values, max_size=4)
_elem_types = st.one_of(st.just(TensorProto.FLOAT), st.integers(0, 30))


def _model(meta: dict[str, str], elem_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """``y = x + w`` with ``x`` of the element type given and ``ferry.KEY`` props."""
    x = helper.make_tensor_value_info("x", elem_type, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    w = numpy_helper.from_array(np.arange(3, dtype=np.float32).reshape(1, 3), "w")
    node = helper.make_node("Add", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    for key, value in meta.items():
        model.metadata_props.add(key=f"ferry.{key}", value=value)
    return model


def _read_model(path: Path) -> None:
    """Every way ferry reads an ONNX file and its metadata, as the stages do."""
    proto: onnx.ModelProto | None = _refused_only(onnx_file.load, path)
    if proto is not None:
        for read in (onnx_file.read_metadata, onnx_file.stored_specs, onnx_file.stored_task, onnx_file.graph_io):
            _refused_only(read, proto)
    _refused_only(onnx_file.input_names, path)
    _refused_only(check, path)


@FUZZ
@given(_metadata, _elem_types)
@example({"inputs": "1" * 5000}, TensorProto.FLOAT)  # ValueError: over Python's 4300 digits of an int
@example({"task": '{"kind": "super-resolution", "scale": 3}'}, 0)  # KeyError: no tensor type
def test_ferry_metadata_is_read_or_refused(scratch: Path, meta: dict[str, str], elem_type: int) -> None:
    model = _model(meta, elem_type)
    for read in (onnx_file.read_metadata, onnx_file.stored_specs, onnx_file.stored_task, onnx_file.metadata_problem):
        _refused_only(read, model)
    path = scratch / "meta.onnx"
    onnx.save(model, str(path))
    before = _files(scratch)
    _read_model(path)
    assert _files(scratch) == before


GOOD_ONNX = _model({"inputs": '[{"name": "x", "spec": "1,3"}]', "task": '{"kind": "super-resolution", "scale": 3}'})
GOOD_ONNX_BYTES = GOOD_ONNX.SerializeToString()
#: offsets in GOOD_ONNX_BYTES: the first metadata key, the node's first input name, the weight's dtype
_KEY_AT = GOOD_ONNX_BYTES.index(b"ferry.inputs")
_NODE_INPUT_AT = GOOD_ONNX_BYTES.index(b"\n\x01x\n\x01w") + 2
_WEIGHT_DTYPE_AT = GOOD_ONNX_BYTES.index(b"\x08\x01\x08\x03\x10\x01") + 5


@FUZZ
@given(_cuts, _flips)
@example(None, [(_KEY_AT, 0x80)])  # protobuf gives bytes for a key that is not UTF-8: TypeError
@example(None, [(_NODE_INPUT_AT, 0x80)])  # onnx.checker's message is not UTF-8: UnicodeDecodeError
@example(None, [(_WEIGHT_DTYPE_AT, 40)])  # onnx.checker: ValueError, invalid tensor data type 40
def test_damaged_onnx_files_are_read_or_refused(scratch: Path, cut: int | None, flips: list[tuple[int, int]]) -> None:
    path = scratch / "damaged.onnx"
    path.write_bytes(_damage(GOOD_ONNX_BYTES, cut, flips))
    before = _files(scratch)
    _read_model(path)
    assert _files(scratch) == before


@FEW
@given(st.binary(max_size=512))
def test_random_bytes_are_not_an_onnx_model(scratch: Path, data: bytes) -> None:
    path = scratch / "random.onnx"
    path.write_bytes(data)
    before = _files(scratch)
    _read_model(path)
    assert _files(scratch) == before


# --- caches --------------------------------------------------------------------------------------


@FUZZ
@given(_cuts, _flips)
@example(None, [(_NODE_INPUT_AT, 0x80)])  # UnicodeDecodeError from onnx.checker
def test_a_damaged_cached_model_is_a_miss(scratch: Path, cut: int | None, flips: list[tuple[int, int]]) -> None:
    models = scratch / "cache" / "models"
    models.mkdir(parents=True, exist_ok=True)
    path = models / "x-int8.onnx"
    path.write_bytes(_damage(GOOD_ONNX_BYTES, cut, flips))
    before = _files(scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FerryWarning)
        usable = usable_cached_model(path)
    assert usable is True or usable is False
    assert _files(scratch) == (before if usable else before - {path})  # a damaged entry is deleted


_CANDIDATE_FIELDS = ("backend", "precision", "file_kind", "psnr_drop_db", "within_one_level", "max_level_diff")
_CANDIDATE_FIELDS += ("verified", "median_ms", "error")
_names = st.sampled_from(["onnxruntime", "openvino", "fp32", "int8", "torch"])
_candidates = st.one_of(
    _json,
    st.dictionaries(st.sampled_from([*_CANDIDATE_FIELDS, "other"]), st.one_of(_names, _json), max_size=9),
    st.just({"backend": "onnxruntime", "precision": "fp32", "file_kind": "fp32"}),
)
_choice_entries = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "backend": st.one_of(_names, _json),
            "precision": st.one_of(_names, _json),
            "speedup": st.one_of(st.floats(), st.integers(), st.just(10**400), _json),
            "candidates": st.one_of(st.lists(_candidates, max_size=3), _json),
        },
    ),
)
_choice_files = st.one_of(_json, st.dictionaries(st.sampled_from(["key", "other"]), _choice_entries, max_size=2))


def _choice_file(speedup: Any, **candidate: Any) -> str:
    """A runtime-choice cache holding one entry under ``key``, as ferry writes it but for what is given."""
    best = {"backend": "onnxruntime", "precision": "fp32", "file_kind": "fp32", **candidate}
    return json.dumps(
        {"key": {"backend": "onnxruntime", "precision": "fp32", "speedup": speedup, "candidates": [best]}}
    )


@FUZZ
@given(st.one_of(_choice_files.map(json.dumps), st.text(), st.sampled_from(["1" * 5000, "[" * 100_000])), _cuts)
@example(_choice_file(10**400), None)  # OverflowError: int too large to convert to float
@example(_choice_file(1.5, median_ms="1"), None)  # a string where ferry writes a number
def test_a_damaged_runtime_choice_cache_is_a_miss(scratch: Path, text: str, cut: int | None) -> None:
    """Whatever the cache file holds, reading it gives a dict and looking a choice up in it gives
    nothing or a choice of the types ferry writes (the file it names exists)."""
    model = scratch / "model.onnx"
    model.write_bytes(GOOD_ONNX_BYTES)
    cache_file = scratch / "runtime-choice.json"
    cache_file.write_text(text[:cut], encoding="utf-8", errors="surrogatepass")
    before = _files(scratch)
    cache = rc._load_cache(cache_file)
    assert isinstance(cache, dict)
    choice = rc._cached(cache, "key", model, scratch / "absent-int8.onnx")
    if choice is not None:
        assert isinstance(choice.backend, str) and isinstance(choice.speedup_vs_fp32_onnxruntime, float)
        assert choice.file.is_file()
        for c in choice.candidates:
            assert all(isinstance(v, str) for v in (c.backend, c.precision, c.file_kind, c.error))
            numbers = (c.psnr_drop_db, c.within_one_level, c.max_level_diff, c.median_ms)
            assert all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in numbers)
    assert _files(scratch) == before


# --- images --------------------------------------------------------------------------------------


def _encoded(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def _png16(alpha: bool) -> bytes:
    planes = 4 if alpha else 3
    rows = np.random.default_rng(2).integers(0, 65536, (9, 7 * planes), dtype=np.uint16)
    buf = io.BytesIO()
    png.Writer(7, 9, greyscale=False, alpha=alpha, bitdepth=16).write(buf, rows)
    return buf.getvalue()


def _tiff16(compression: str | None) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 65536, (9, 7, 3), dtype=np.uint16)
    tifffile.imwrite(buf, pixels, photometric="rgb", compression=compression)
    return buf.getvalue()


_RGB = Image.fromarray(np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8))
_EXIF = Image.Exif()
_EXIF[0x0112] = 6  # rotated: the loaders apply it
#: one small valid file of every kind the loaders take, by file name
IMAGES = {
    "rgb.png": _encoded(_RGB, "PNG"),
    "rgba.png": _encoded(_RGB.convert("RGBA"), "PNG"),
    "palette.png": _encoded(_RGB.convert("P"), "PNG"),
    "gray16.png": _encoded(Image.fromarray(np.arange(63, dtype=np.uint16).reshape(9, 7) * 1000), "PNG"),
    "rgb16.png": _png16(alpha=False),
    "rgba16.png": _png16(alpha=True),
    "exif.jpg": _encoded(_RGB, "JPEG", exif=_EXIF.tobytes()),
    "progressive.jpg": _encoded(_RGB, "JPEG", progressive=True),
    "rgb.tif": _encoded(_RGB, "TIFF"),
    "lzw.tif": _encoded(_RGB, "TIFF", compression="tiff_lzw"),
    "rgb16.tif": _tiff16(None),
    "zlib16.tif": _tiff16("zlib"),
    "rgb.webp": _encoded(_RGB, "WEBP"),
    "rgb.bmp": _encoded(_RGB, "BMP"),
}
_TIFF16_HEIGHT_AT = tifffile.TiffFile(io.BytesIO(IMAGES["rgb16.tif"])).pages.first.tags["ImageLength"].valueoffset


def _read_image(path: Path) -> None:
    """Every image reader: Pillow's (``load_image``), ``ferry upscale``'s and the 16-bit one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's and tifffile's warnings on damaged files
        for read in (load_image, upscale_open, deep16.read):
            _refused_only(read, path)
        assert deep16.is_deep_rgb(path) in (True, False)


@FUZZ
@given(st.sampled_from(sorted(IMAGES)), _cuts, _flips)
@example("rgb.png", None, [(11, 0)])  # ValueError: truncated IHDR chunk
@example("rgb16.tif", None, [(_TIFF16_HEIGHT_AT, 0)])  # IndexError: a 16-bit TIFF of height 0
@example("rgb.tif", None, [(72, 7)])  # TypeError from Pillow's TIFF reader (offsets: files of Pillow 13)
@example("lzw.tif", None, [(492, 1)])  # struct.error writing back the damaged EXIF of a TIFF
def test_damaged_images_are_read_or_refused(
    scratch: Path, name: str, cut: int | None, flips: list[tuple[int, int]]
) -> None:
    path = scratch / name
    path.write_bytes(_damage(IMAGES[name], cut, flips))
    before = _files(scratch)
    _read_image(path)
    assert _files(scratch) == before


@FEW
@given(st.sampled_from(sorted(IMAGES)), st.binary(max_size=300))
def test_random_bytes_after_an_image_signature_are_refused(scratch: Path, name: str, data: bytes) -> None:
    path = scratch / name
    path.write_bytes(IMAGES[name][:8] + data)
    _read_image(path)


def _png(width: int, height: int, depth: int, colour: int) -> bytes:
    """A PNG whose header declares ``width x height`` and whose data is a few rows of zeros."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")
    )


def _patched(data: bytes, at: list[tuple[int, str, int]]) -> bytes:
    out = bytearray(data)
    for offset, fmt, value in at:
        struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _tiff_claiming(name: str, width: int, height: int) -> bytes:
    tags = tifffile.TiffFile(io.BytesIO(IMAGES[name])).pages.first.tags
    return _patched(
        IMAGES[name], [(tags["ImageWidth"].valueoffset, "<I", width), (tags["ImageLength"].valueoffset, "<I", height)]
    )


def _jpeg_claiming(width: int, height: int) -> bytes:
    sof = IMAGES["exif.jpg"].index(b"\xff\xc0")
    return _patched(IMAGES["exif.jpg"], [(sof + 5, ">H", height), (sof + 7, ">H", width)])


#: file name -> (largest side its header can declare, a file declaring width x height)
BOMBS: dict[str, tuple[int, Callable[[int, int], bytes]]] = {
    "rgb.png": (2**31 - 1, lambda w, h: _png(w, h, 8, 2)),
    "rgb16.png": (2**31 - 1, lambda w, h: _png(w, h, 16, 2)),
    "rgba16.png": (2**31 - 1, lambda w, h: _png(w, h, 16, 6)),
    "gray16.png": (2**31 - 1, lambda w, h: _png(w, h, 16, 0)),
    "rgb.tif": (2**32 - 1, lambda w, h: _tiff_claiming("rgb.tif", w, h)),
    "rgb16.tif": (2**32 - 1, lambda w, h: _tiff_claiming("rgb16.tif", w, h)),
    "zlib16.tif": (2**32 - 1, lambda w, h: _tiff_claiming("zlib16.tif", w, h)),
    "big.jpg": (65535, _jpeg_claiming),
    "rgb.bmp": (2**31 - 1, lambda w, h: _patched(IMAGES["rgb.bmp"], [(18, "<i", w), (22, "<i", h)])),
}


@st.composite
def bombs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A small file whose header declares more pixels than :func:`ferry.images.max_pixels`."""
    name = draw(st.sampled_from(sorted(BOMBS)))
    side, build = BOMBS[name]
    limit = max_pixels() or 2**40
    width = draw(st.integers(limit // side + 1, side))
    height = draw(st.integers(min(limit // width + 1, side), side))
    return name, build(width, height)


@FEW
@given(bombs())
def test_images_declaring_too_many_pixels_are_refused_from_the_header(scratch: Path, bomb: tuple[str, bytes]) -> None:
    name, data = bomb
    path = scratch / name
    path.write_bytes(data)
    rss = _max_rss_mb()
    readers = [load_image, upscale_open] + ([deep16.read] if name.endswith((".png", ".tif")) else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for read in readers:
            with pytest.raises(FerryError, match="decompression bomb"):
                read(path)
    assert _max_rss_mb() - rss < 100, "a refused image was decoded"


def _damaged_image(name: str, cut: int | None, flips: list[tuple[int, int]]) -> tuple[str, bytes]:
    return name, _damage(IMAGES[name], cut, flips)


@settings(FUZZ, max_examples=25)  # a whole command each: about 0.2 s
@given(st.one_of(st.builds(_damaged_image, st.sampled_from(sorted(IMAGES)), _cuts, _flips), bombs()))
@example(_damaged_image("rgb.png", None, [(11, 0)]))
@example(_damaged_image("rgb16.tif", None, [(_TIFF16_HEIGHT_AT, 0)]))
def test_ferry_upscale_on_a_damaged_image_exits_0_or_1_and_writes_nothing_on_failure(
    scratch: Path, cli_main: Callable[[list[str]], int], image: tuple[str, bytes]
) -> None:
    name, data = image
    folder = scratch / "upscale"
    folder.mkdir(exist_ok=True)
    source, target = folder / f"in-{name}", folder / f"out-{name}"
    source.write_bytes(data)
    target.unlink(missing_ok=True)
    before = _files(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's warnings on damaged files
        code = cli_main(["upscale", str(source), "-o", str(target), "--backend", "torch"])
    assert code in (0, 1)
    assert _files(folder) - before == ({target} if code == 0 else set())


# --- .npy and .npz -------------------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npz(save: Callable[..., None]) -> bytes:
    buf = io.BytesIO()
    save(buf, x=np.ones((2, 3), np.float32), y=np.arange(4))
    return buf.getvalue()


#: one small valid file of each kind, by file name
ARRAYS = {
    "floats.npy": _npy(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "fortran.npy": _npy(np.asfortranarray(np.ones((3, 5), dtype=np.int64))),
    "records.npy": _npy(np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])),
    "stored.npz": _npz(np.savez),
    "deflated.npz": _npz(np.savez_compressed),
}
#: offsets: the header length of an .npy file, the extra-field length of a zip's first local header
_HEADER_LEN_AT, _EXTRA_LEN_AT = 8, 28


def _central(name: str, field: int) -> int:
    """Offset of a field of the first central-directory entry of ``ARRAYS[name]`` (6: version, 8: flags)."""
    return ARRAYS[name].index(b"PK\x01\x02") + field


@FUZZ
@given(st.sampled_from(sorted(ARRAYS)), _cuts, _flips)
@example("floats.npy", None, [(_HEADER_LEN_AT, 1)])  # tokenize.TokenError: a header cut to "{"
@example("stored.npz", None, [(_central("stored.npz", 6), 128)])  # NotImplementedError: zip version 12.8
@example("stored.npz", None, [(_central("stored.npz", 8), 1)])  # RuntimeError: encrypted
@example("deflated.npz", None, [(_EXTRA_LEN_AT, 0)])  # zlib.error: the data read from the wrong offset
def test_damaged_array_files_are_read_or_refused(
    scratch: Path, name: str, cut: int | None, flips: list[tuple[int, int]]
) -> None:
    path = scratch / name
    path.write_bytes(_damage(ARRAYS[name], cut, flips))
    before = _files(scratch)
    _refused_only(read_arrays, [str(path)], ["x", "y"])
    assert _files(scratch) == before


_shapes = st.one_of(
    st.lists(st.one_of(st.integers(-2, 5), st.integers(0, 2**70)), max_size=MAX_RANK + 6).map(tuple),
    st.integers(),
    st.text(max_size=3),
)
_descrs = st.one_of(
    st.sampled_from(["<f4", "|b1", "<i8", "|O", "<U1000000000", "|V0", "|S0", "<c16", "<M8[s]", "bad"]),
    st.just([("a", "<f4", (100_000, 100_000))]),
    st.just([]),
    st.integers(),
)
_headers = st.fixed_dictionaries(
    {}, optional={"descr": _descrs, "fortran_order": st.one_of(st.booleans(), st.integers()), "shape": _shapes}
)


@FUZZ
@given(_headers, st.sampled_from([(1, 0), (2, 0), (3, 0), (9, 9)]), st.binary(max_size=64), st.booleans())
@example({"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}, (1, 0), b"", False)
@example({"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}, (1, 0), b"", True)
def test_array_headers_are_checked_before_anything_is_allocated(
    scratch: Path, header: dict[str, Any], version: tuple[int, int], body: bytes, zipped: bool
) -> None:
    text = repr(header).encode("latin-1", "replace")
    text += b" " * ((-len(text) - 11) % 64) + b"\n"
    data = b"\x93NUMPY" + bytes(version) + struct.pack("<H" if version == (1, 0) else "<I", len(text)) + text + body
    path = scratch / ("header.npz" if zipped else "header.npy")
    if zipped:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.npy", data)
    else:
        path.write_bytes(data)
    before, rss = _files(scratch), _max_rss_mb()
    _refused_only(read_arrays, [str(path)], ["x"])
    assert _max_rss_mb() - rss < 100
    assert _files(scratch) == before
