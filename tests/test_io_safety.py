"""Inputs are never written over, OS errors are user errors, signals and killed runs leave nothing
behind (issue 14): every case through the CLI, with the input's bytes compared and no stray
temporary file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ferry import _io
from tests.conftest import CliResult

Cli = Callable[..., CliResult]


def _photo(path: Path, w: int = 24, h: int = 18) -> Path:
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".ferry-tmp-") or ".tmp" in p.name]


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def model(tmp_path: Path, superres_onnx: Path) -> Path:
    """A copy of the exported zoo model in its own folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    return Path(shutil.copy(superres_onnx, folder / "m.onnx"))


# --- inputs are sacred ---------------------------------------------------------------------------


def test_upscale_onto_its_own_input_is_refused(tmp_path: Path, cli: Cli) -> None:
    photo = _photo(tmp_path / "p.png")
    before = photo.read_bytes()
    res = cli("upscale", photo, "-o", photo, "--backend", "torch")
    assert res.code == 1
    assert _errors(res.err) == [f"error: refusing to write {photo}: it is an input; give another output path"]
    # a hard link (or a symlink) to the input is the input too
    os.link(photo, tmp_path / "link.png")
    res = cli("upscale", photo, "-o", tmp_path / "link.png", "--backend", "torch")
    assert res.code == 1 and "it is an input (the same file as" in res.err
    res = cli("upscale", photo, "-o", tmp_path / "q.png", "--backend", "torch", "--json", photo)
    assert res.code == 1 and "refusing to write" in res.err and not (tmp_path / "q.png").exists()
    assert photo.read_bytes() == before and not _temps(tmp_path)


def test_folder_onto_itself_is_refused_even_with_overwrite(tmp_path: Path, cli: Cli) -> None:
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png"), _photo(src / "sub" / "b.jpg")
    before = _bytes(src)
    for extra in ([], ["--overwrite"]):
        res = cli("upscale", src, "-o", src, "--backend", "torch", *extra)
        assert res.code == 1
        assert _errors(res.err) == [f"error: refusing to write {src}: it is an input; give another output path"]
    assert _bytes(src) == before and not _temps(tmp_path)


def test_output_folder_inside_the_input_folder_is_not_upscaled_again(tmp_path: Path, cli: Cli) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    _photo(src / "a.png"), _photo(src / "b.png")
    out = src / "x3"
    first = cli("upscale", src, "-o", out, "--backend", "torch", "--json", tmp_path / "1.json")
    assert first.code == 0, first.err
    for overwrite in ([], ["--overwrite"]):
        again = cli("upscale", src, "-o", out, "--backend", "torch", "--json", "-", *overwrite)
        assert again.code == 0, again.err
        assert sorted(Path(f["source"]).name for f in json.loads(again.out)["files"]) == ["a.png", "b.png"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["a.png", "b.png"]
    assert Image.open(out / "a.png").size == (72, 54)  # x3 once, not x9


def test_check_and_inspect_refuse_json_onto_the_model(model: Path, cli: Cli) -> None:
    before = model.read_bytes()
    for command in ("check", "inspect"):
        res = cli(command, model, "--json", model)
        assert res.code == 1, res.err
        assert _errors(res.err) == [f"error: refusing to write {model}: it is an input; give another output path"]
        assert res.out == ""  # refused before the work, not after printing "valid"
    link = model.parent / "alias.json"
    link.symlink_to(model)
    assert cli("check", model, "--json", link).code == 1
    assert model.read_bytes() == before and link.is_symlink() and not _temps(model.parent)


def test_package_never_deletes_its_input(model: Path, tmp_path: Path, cli: Cli) -> None:
    folder = model.parent
    (folder / "notes.txt").write_text("mine")
    before = _bytes(folder)
    for out, extra in ((folder, ["--overwrite"]), (folder, []), (model, ["--overwrite"]), (tmp_path, ["--overwrite"])):
        res = cli("package", model, "-t", "onnx", "-o", out, *extra)
        assert res.code == 1, res.err
        (line,) = _errors(res.err)
        assert line.startswith(f"error: refusing to replace {out}: it ") and "give another output folder" in line
    res = cli("package", model, "-t", "onnx", "-o", tmp_path / "pkg", "--json", model)
    assert res.code == 1 and "refusing to write" in res.err and not (tmp_path / "pkg").exists()
    assert _bytes(folder) == before and not _temps(tmp_path)


def test_outputs_that_are_not_regular_files_are_written_to_not_replaced(model: Path, tmp_path: Path, cli: Cli) -> None:
    res = cli("check", model, "--json", "/dev/null")
    assert res.code == 0, res.err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    res = cli("check", model, "--json", fifo)
    reader.join(30)
    assert res.code == 0, res.err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(received[0])["valid"] is True
    assert not _temps(tmp_path) and not list(Path("/dev").glob(".ferry-tmp-*"))


# --- OS errors are user errors -------------------------------------------------------------------


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder nothing can be created in: chmod 0o500, or (root ignores permissions) os.open and
    os.mkdir refusing with EACCES there."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        real_open, real_mkdir = os.open, os.mkdir

        def refuse(path: str | os.PathLike[str]) -> None:
            if os.fspath(path).startswith(f"{folder}{os.sep}"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

        def fake_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kwargs: Any) -> int:
            if flags & os.O_CREAT:
                refuse(path)
            return real_open(path, flags, mode, **kwargs)

        def fake_mkdir(path: str | os.PathLike[str], mode: int = 0o777, **kwargs: Any) -> None:
            refuse(path)
            real_mkdir(path, mode, **kwargs)

        monkeypatch.setattr(os, "open", fake_open)
        monkeypatch.setattr(os, "mkdir", fake_mkdir)
    yield folder
    folder.chmod(0o700)


def test_read_only_output_folder_is_exit_1_naming_the_path(
    tmp_path: Path, model: Path, read_only: Path, cli: Cli
) -> None:
    photo = _photo(tmp_path / "p.png")
    target = read_only / "p_x3.png"
    res = cli("upscale", photo, "-o", target, "--backend", "torch")
    assert res.code == 1, res.err
    assert f"cannot write {target}: Permission denied; check its permissions" in res.err
    assert "internal error" not in res.err and not target.exists() and not _temps(tmp_path)
    res = cli("package", model, "-t", "onnx", "-o", read_only / "pkg")
    assert res.code == 1 and f"cannot write the package {read_only / 'pkg'}: Permission denied" in res.err


def _full_disk(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> None:
    """``cls.method`` writes a few bytes and then fails as a full disk does."""

    def full(self: object, target: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        Path(target).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cls, method, full)


def test_full_disk_is_exit_1_and_leaves_nothing(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    photo = _photo(tmp_path / "p.png")
    with monkeypatch.context() as m:
        _full_disk(m, Image.Image, "save")
        res = cli("upscale", photo, "-o", tmp_path / "big.png", "--backend", "torch")
    assert res.code == 1, res.err
    assert f"cannot write {tmp_path / 'big.png'}: No space left on device; free some disk space" in res.err
    assert "use .png" not in res.err  # not blamed on the file format
    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", lambda self, *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
        res = cli("check", model, "--json", tmp_path / "r.json")
    assert res.code == 1 and _errors(res.err) == [
        f"error: cannot write {tmp_path / 'r.json'}: No space; free some disk space or write somewhere else"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "p.png"]


def test_a_legal_249_byte_name_is_written(tmp_path: Path, cli: Cli) -> None:
    photo = _photo(tmp_path / "p.png")
    target = tmp_path / ("n" * 245 + ".png")
    res = cli("upscale", photo, "-o", target, "--backend", "torch")
    assert res.code == 0, res.err
    assert Image.open(target).size == (72, 54) and not _temps(tmp_path)
    too_long = tmp_path / ("n" * 252 + ".png")
    res = cli("upscale", photo, "-o", too_long, "--backend", "torch")
    assert res.code == 1 and "File name too long; use a shorter file name" in res.err


def test_unusable_cache_folder_warns_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    (tmp_path / "cache-is-a-file").write_text("")
    monkeypatch.setenv("FERRY_CACHE_DIR", str(tmp_path / "cache-is-a-file" / "ferry"))
    photo = _photo(tmp_path / "p.png")
    res = cli("upscale", photo, "-o", tmp_path / "big.png", "--backend", "onnxruntime")
    assert res.code == 0, res.err
    assert "warning: not caching the exported model: cannot write" in res.err
    assert "FERRY_CACHE_DIR" in res.err and (tmp_path / "big.png").is_file()


def test_one_unwritable_output_fails_alone_in_a_folder_run(tmp_path: Path, cli: Cli) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png"), _photo(src / "sub" / "b.png"), _photo(src / "c.png")
    out.mkdir()
    (out / "sub").write_text("a file where the output folder sub/ should be")
    res = cli("upscale", src, "-o", out, "--backend", "torch", "--json", tmp_path / "r.json")
    assert res.code == 1
    status = {Path(f["source"]).name: f["status"] for f in json.loads((tmp_path / "r.json").read_text())["files"]}
    assert status == {"a.png": "done", "b.png": "failed", "c.png": "done"}
    assert f"cannot write {out / 'sub' / 'b.png'}: Not a directory" in res.err
    assert _errors(res.err) == ["error: 1 file(s) could not be upscaled (see above); of the other 2, 2 written"]
    assert not _temps(tmp_path)


def test_when_every_file_fails_the_summary_says_nothing_was_written(tmp_path: Path, cli: Cli) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.jpg"):
        (src / name).write_bytes(b"not an image")
    res = cli("upscale", src, "-o", tmp_path / "out", "--backend", "torch")
    assert res.code == 1
    assert _errors(res.err) == ["error: 2 file(s) could not be upscaled (see above); nothing was written"]
    assert "the others were written" not in res.err


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_truncated_video_fails_and_writes_nothing(tmp_path: Path, cli: Cli, container: str) -> None:
    av = pytest.importorskip("av", reason="video needs PyAV: pip install 'ferry[video]'")
    whole = tmp_path / f"whole.{container}"
    with av.open(str(whole), "w", options={"movflags": "faststart"} if container == "mp4" else {}) as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        for i in range(48):
            rgb = np.full((24, 32, 3), (i * 5) % 256, dtype=np.uint8)
            rgb[:, : i % 32] = 255
            out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(video.encode(None))
    cut = tmp_path / f"cut.{container}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    res = cli("upscale", cut, "-o", tmp_path / f"big.{container}", "--backend", "torch")
    assert res.code == 1, res.err
    # the decoder either says so or (threaded, or Matroska) just stops early: both fail the file
    assert "of 48 frames: the file is truncated or damaged; nothing was written" in res.err or (
        container == "mp4" and "cannot transcode video" in res.err
    )
    assert not (tmp_path / f"big.{container}").exists() and not _temps(tmp_path)


# --- signals and leftovers -----------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path: Path, cli: Cli) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    _photo(src / "a.png"), _photo(src / "sub" / "b.png")
    (out / "sub").mkdir(parents=True)
    _photo(out / "a.png")  # done before: skipped, but its folder is tidied all the same
    host = _io._HOST
    dead = _dead_pid()
    stale = [out / f".ferry-tmp-{host}-{dead}-0badc0de.png", out / "sub" / f".ferry-tmp-{host}-{dead}-0badc0de.png"]
    other_host = "0000" if host != "0000" else "ffff"
    kept = [
        out / f".ferry-tmp-{host}-{os.getpid()}-12345678.png",  # a live process: still writing
        out / f".ferry-tmp-{other_host}-{dead}-12345678.png",  # another machine's (a shared folder)
        out / ".photo.png.tmp",  # not ferry's
    ]
    for path in (*stale, *kept):
        path.write_bytes(b"half")
    (src / f".ferry-tmp-{host}-{dead}-0badc0de.png").write_bytes(b"half")  # never taken for a photo
    res = cli("upscale", src, "-o", out, "--backend", "torch", "--json", "-")
    assert res.code == 0, res.err
    assert [Path(f["source"]).name for f in json.loads(res.out)["files"]] == ["a.png", "b.png"]
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_package_folder_has_the_permissions_of_the_umask_and_tidies_leftovers(
    tmp_path: Path, model: Path, cli: Cli
) -> None:
    leftover = tmp_path / f".ferry-tmp-{_io._HOST}-{_dead_pid()}-abcdef01"  # a staging folder, killed run
    (leftover / "sub").mkdir(parents=True)
    previous = os.umask(0o022)
    try:
        res = cli("package", model, "-t", "onnx", "-o", tmp_path / "pkg")
        assert res.code == 0, res.err
        assert stat.S_IMODE((tmp_path / "pkg").stat().st_mode) == 0o755
        assert stat.S_IMODE((tmp_path / "pkg" / "manifest.json").stat().st_mode) == 0o644
        os.umask(0o027)
        res = cli("package", model, "-t", "onnx", "-o", tmp_path / "pkg", "--overwrite")
        assert res.code == 0, res.err
        assert stat.S_IMODE((tmp_path / "pkg").stat().st_mode) == 0o750
    finally:
        os.umask(previous)
    assert not leftover.exists() and not _temps(tmp_path)


_DRIVER = """
import sys
import ferry.superres.upscale as up

real = up.tiled

def tiled(*args, **kwargs):
    run = real(*args, **kwargs)

    def announced(y):
        print("working", flush=True)
        return run(y)

    return announced

up.tiled = tiled
from ferry.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_sigterm_is_handled_like_sigint(tmp_path: Path, signum: int, code: int, word: str) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in range(6):
        _photo(src / f"{k}.png", 160, 120)
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, "upscale", src, "-o", out, "--backend", "torch", "--tile", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, even under nohup
    )
    assert proc.stdout is not None
    seen = 0
    while seen < 2:  # the second image is being upscaled: the first may be being written
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        seen += line.strip() == "working"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == word
    assert not _temps(tmp_path) and not _temps(src)


def test_verify_run_and_optimize_never_write_onto_the_model(tmp_path: Path, cli: Any, tiny: Any) -> None:
    model = tmp_path / "t.onnx"
    assert cli("export", tiny("TinyConv"), "-o", model, "--input", "1,3,8,8").code == 0
    before = model.read_bytes()
    for args in (
        ("verify", tiny("TinyConv"), model, "--report", model),
        ("verify", tiny("TinyConv"), model, "--json", model),
        ("run", model, "--input", "1,3,8,8", "--json", model),
        ("optimize", model, "-o", model),
    ):
        res = cli(*args)
        assert res.code == 1, (args, res.err)
        assert model.read_bytes() == before, args
