"""File helpers shared by every command: inputs that are never written over, atomic writes that
leave no half-written file, recognisable temporary names that a later run cleans up, and OS
errors turned into one-line user errors; quiet native libraries."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ferry.errors import UserError, WriteError, describe_os_error

# --- temporary names -----------------------------------------------------------------------------

TEMP_PREFIX = ".ferry-tmp-"
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:4]
_TEMP_NAME = re.compile(r"^\.ferry-tmp-(?P<host>[0-9a-f]{4})-(?P<pid>[0-9]+)-")


def temp_name(suffix: str = "") -> str:
    """A hidden name for a temporary file or folder: ``.ferry-tmp-<host>-<pid>-<random><suffix>``.

    The host and process id let a later run tell a leftover (its process is gone: killed during
    a write) from a file another run is writing now. The name stays under 70 bytes whatever the
    target's, so a legal 255-byte output name never makes an illegal temporary one.
    """
    if len(suffix.encode(errors="surrogateescape")) > 24:
        suffix = ""  # not a format extension anyway; keep the name short
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of ferry's temporary names (an input walk skips them)."""
    return name.startswith(TEMP_PREFIX)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists here (a zombie or a reused id counts: when unsure, keep)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def is_stale_temp(name: str) -> bool:
    """Whether ``name`` is a temporary file of a process of this host that has died."""
    match = _TEMP_NAME.match(name)
    return match is not None and match["host"] == _HOST and not _process_alive(int(match["pid"]))


_swept: set[str] = set()
_swept_lock = threading.Lock()


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete ferry's temporary files and folders in ``folder`` whose process has died (a run
    killed by SIGKILL or a power cut); those of running processes and of other hosts (a shared
    folder) are kept.

    Returns the paths removed. Errors (a folder that cannot be read) are ignored: this is tidying.
    """
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if is_stale_temp(e.name)]
    except OSError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _sweep_once(folder: Path) -> None:
    """Remove stale temporary files the first time this process writes into ``folder``."""
    key = os.path.abspath(folder)
    with _swept_lock:
        if key in _swept:
            return
        _swept.add(key)
    remove_stale_temps(folder)


# --- inputs that are never written over ----------------------------------------------------------

_inputs: list[Path] = []
_inputs_lock = threading.Lock()
_command_depth = 0


def _existing(paths: tuple[str | os.PathLike[str] | None, ...]) -> list[Path]:
    """The paths that name existing files or folders, with ``file.py:Attr`` read as ``file.py``."""
    found = []
    for p in paths:
        if p is None:
            continue
        text = os.fspath(p)
        code = text.rpartition(":")[0]
        for candidate in (text, code if code.endswith(".py") else ""):
            if candidate and os.path.exists(candidate):
                found.append(Path(os.path.abspath(candidate)))
                break
    return found


def add_inputs(*paths: str | os.PathLike[str] | None) -> None:
    """Protect the inputs of the running CLI command until it ends (no-op outside a command)."""
    if _command_depth:
        with _inputs_lock:
            _inputs.extend(_existing(paths))


@contextlib.contextmanager
def command_inputs() -> Iterator[None]:
    """The lifetime of one CLI command: inputs registered inside stay protected until it ends, so
    that ``--json`` written after the work still cannot land on an input."""
    global _command_depth
    with _inputs_lock:
        _command_depth += 1
    try:
        yield
    finally:
        with _inputs_lock:
            _command_depth -= 1
            if not _command_depth:
                _inputs.clear()


@contextlib.contextmanager
def reading(*paths: str | os.PathLike[str] | None) -> Iterator[None]:
    """Protect ``paths`` (a call's inputs; missing ones and ``zoo:`` names are ignored) from being
    written, replaced or deleted by :func:`atomic_path` and :func:`refuse_removing_inputs` during
    the call (and, under the CLI, until the command ends)."""
    entries = _existing(paths)
    with _inputs_lock:
        _inputs.extend(entries)
    try:
        yield
    finally:
        with _inputs_lock:
            if not _command_depth:
                for entry in entries:
                    _inputs.remove(entry)


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_if_input(target: str | os.PathLike[str] | None) -> None:
    """Raise :class:`UserError` when ``target`` is (the same file as) an input of the running call."""
    if target is None or os.fspath(target) == "-" or not os.path.exists(target):
        return
    with _inputs_lock:
        inputs = list(_inputs)
    for inp in inputs:
        if _same_file(target, inp):
            same = "" if os.path.abspath(target) == str(inp) else f" (the same file as {inp})"
            raise UserError(f"refusing to write {target}: it is an input{same}; give another output path")


def refuse_removing_inputs(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`UserError` when replacing ``folder`` would delete an input of the running call."""
    if not os.path.lexists(folder):
        return
    real = Path(os.path.realpath(folder))
    with _inputs_lock:
        inputs = list(_inputs)
    for inp in inputs:
        inp_real = Path(os.path.realpath(inp))
        if inp_real == real or _same_file(folder, inp):
            raise UserError(f"refusing to replace {folder}: it is the input {inp}; give another output folder")
        if real in inp_real.parents:
            raise UserError(f"refusing to replace {folder}: it holds the input {inp}; give another output folder")


# --- atomic writes --------------------------------------------------------------------------------


def _not_a_regular_file(target: Path) -> bool:
    """Devices, FIFOs, sockets and ``/dev/stdout``-like paths: written to, never renamed onto."""
    if str(target.absolute()).startswith(("/proc/", "/dev/fd/", "/dev/std")):
        return True
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _create_temp(final: Path, target: Path) -> Path:
    """An empty temporary file beside ``final``, with the permissions a plain ``open()`` gives."""
    try:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # a file where a folder of the path should be
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), exc.filename) from exc
        _sweep_once(final.parent)
        while True:
            tmp = final.parent / temp_name(final.suffix)
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileExistsError:
                continue
    except OSError as exc:
        raise WriteError(describe_os_error(exc, target, "write")) from exc


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    The temporary file keeps the target's suffix so libraries that pick a format from the
    extension (Pillow, numpy) behave as they would on the real name. A target that is an input of
    the running call is refused; one that is not a regular file (``/dev/null``, a FIFO,
    ``/dev/stdout``) is yielded itself and written directly; a symlink is written through.

    Raises:
        UserError: the target is an input or a folder.
        WriteError: the operating system refused the write (permissions, a full disk...).
    """
    target = Path(target)
    refuse_if_input(target)
    if _not_a_regular_file(target):
        yield target  # renaming onto a device or a FIFO would replace it with a regular file
        return
    if os.path.isdir(target):
        raise UserError(f"{target} is a folder; give a file name")
    final = Path(os.path.realpath(target)) if os.path.islink(target) else target
    tmp = _create_temp(final, target)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        ours = exc.filename is None or Path(os.fsdecode(exc.filename)) in (tmp, final, target)
        if exc.errno is None or not ours:
            raise  # not a failed write (a format Pillow cannot save, another file): the caller's to say
        raise WriteError(describe_os_error(exc, target, "write")) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def native_output_silenced() -> Iterator[None]:
    """Silence what C/C++ libraries print straight to file descriptors 1 and 2.

    ``contextlib.redirect_stdout`` only reaches Python code; runtimes such as LiteRT write their
    banners from C++.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
