"""Input files as every reader takes them: a regular file that exists, never a folder, a FIFO or a
device (``/dev/zero`` would be read forever, a FIFO would block)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ferry.errors import UserError, describe_os_error


def input_file(path: str | os.PathLike[str], what: str, *, hint: str = "", allow_empty: bool = False) -> Path:
    """``path`` when it names a regular file that can be read.

    Args:
        what: what the file is, for the message (``ONNX file``, ``weights file``...).
        hint: what to do, appended to the messages that ask for another file.
        allow_empty: accept a file of 0 bytes.

    Raises:
        UserError: a missing file, a folder, a FIFO, a socket or a device, an empty file, or an
            operating-system error (permissions) with its cause.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}{tail}") from None
    except OSError as exc:
        raise UserError(describe_os_error(exc, path, "read")) from exc
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path} is a folder, not a {what}{tail}")
    if not stat.S_ISREG(info.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(info.st_mode) else "socket" if stat.S_ISSOCK(info.st_mode) else "device"
        raise UserError(f"{path} is a {kind}, not a regular file; save the {what} to disk and give that file")
    if info.st_size == 0 and not allow_empty:
        raise UserError(f"{what} {path} is empty (0 bytes){tail}")
    return path
