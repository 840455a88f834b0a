"""Files on the filesystems pyarrow knows (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``,
``file://``...), for the commands that read and write them on a Ray cluster (``ferry upscale
--ray``).

A URI becomes a filesystem and a path there through ``pyarrow.fs.FileSystem.from_uri``, as Ray
Data resolves its own; pyarrow comes with ``ferry[ray]`` and is imported only inside the functions.
Writes are whole or absent: an object store's upload only becomes the object when it completes
(one put), and on the other filesystems a file is written under one of ferry's temporary names
and renamed onto its own.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from ferry._io import is_stale_temp, remove_stale_temps, temp_name
from ferry.errors import UserError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: filesystems (``type_name``) whose objects appear whole when their upload completes
OBJECT_STORES = ("s3", "gcs", "abfs")
#: what S3 (the AWS SDK), GCS and the others say when the credentials are missing or not allowed
_DENIED = re.compile(
    r"ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|EXPIRED_TOKEN|HTTP status 403"
    r"|PERMISSION_DENIED|UNAUTHENTICATED|[Pp]ermission denied"
)
_NO_BUCKET = re.compile(r"NO_SUCH_BUCKET|[Bb]ucket '?[^ ']*'? (?:not found|does not exist)")
_UNREACHABLE = re.compile(r"NETWORK_CONNECTION|[Cc]ouldn't connect|[Cc]ould not connect|curlCode|[Tt]imed? ?out")
_REQUEST_ID = re.compile(r"\s*\(Request ID: [^)]*\)")


def is_uri(where: object) -> bool:
    """Whether ``where`` (a string) is a URI (``scheme://...``) rather than a local path."""
    return isinstance(where, str) and _SCHEME.match(where) is not None


def display_name(uri: str) -> str:
    """A URI as messages show it: without credentials (``KEY:SECRET@``) and options (``?...``)."""
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    path = parts.path.rstrip("/") or ("/" if parts.path else "")
    return f"{parts.scheme}://{host}{path}"


@dataclass(frozen=True)
class Location:
    """A file or folder on a filesystem: the (pyarrow) filesystem, the path there, and its name
    for messages (the URI without credentials or options, or the local path)."""

    fs: Any
    path: str
    name: str

    @property
    def object_store(self) -> bool:
        return str(self.fs.type_name) in OBJECT_STORES

    def child(self, relative: str) -> Location:
        """The file ``relative`` (``/``-separated) under this folder."""
        return Location(self.fs, f"{self.path.rstrip('/')}/{relative}", f"{self.name.rstrip('/')}/{relative}")

    def kind(self) -> str:
        """``file``, ``folder`` or ``missing``.

        Raises:
            UserError: the filesystem refused (credentials, no such bucket, no network...).
        """
        import pyarrow.fs as pafs

        with failing(self, "read"):
            kind = self.fs.get_file_info(self.path).type
        return {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}.get(kind, "missing")

    def files(self) -> list[str]:
        """The files under this folder (recursively), as ``/``-separated paths relative to it;
        none when it does not exist.

        Raises:
            UserError: the filesystem refused the listing, or its bucket does not exist.
        """
        import pyarrow.fs as pafs

        base = self.path.rstrip("/") + "/"
        try:
            found = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
        except FileNotFoundError:  # no such folder (allow_not_found would hide a missing bucket too)
            return []
        except (OSError, ValueError) as exc:
            raise error(exc, self, "list") from None
        return [f.path[len(base) :] for f in found if f.type == pafs.FileType.File and f.path.startswith(base)]

    def _key(self) -> tuple[str, PurePosixPath]:
        """What tells two locations apart: the kind of filesystem and the path there (the local
        one resolved). Options (endpoint, region) are left out, so that two spellings of one
        place compare equal: a needless refusal is better than a folder written into itself."""
        import os

        kind = str(self.fs.type_name)
        return kind, PurePosixPath(os.path.realpath(self.path) if kind == "local" else self.path.strip("/"))

    def relative_to(self, other: Location) -> tuple[str, ...] | None:
        """The parts of this location's path below ``other``'s (``()`` when they are the same
        place), or ``None`` when it is not inside ``other``."""
        (kind, mine), (other_kind, theirs) = self._key(), other._key()
        if kind != other_kind or not (mine == theirs or theirs in mine.parents):
            return None
        return mine.relative_to(theirs).parts


def locate(where: str) -> Location:
    """``where`` as a location: a URI through ``pyarrow.fs.FileSystem.from_uri``, a local path on
    the local filesystem.

    Raises:
        UserError: a scheme pyarrow does not know, a malformed URI, a URI without a path, a
            filesystem that cannot start (e.g. HDFS without Java) or a bucket whose region cannot
            be found.
    """
    import os

    import pyarrow.fs as pafs

    if not is_uri(where):
        return Location(pafs.LocalFileSystem(), os.path.abspath(where), where)
    name = display_name(where)
    try:
        fs, path = pafs.FileSystem.from_uri(where)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        if "Unrecognized filesystem" not in str(exc):
            raise UserError(f"cannot open {name}: {message(exc)}") from None
        raise UserError(
            f"cannot open {name}: pyarrow knows no filesystem {where.partition('://')[0]}://; give one it knows"
            " (s3://BUCKET/PATH, gs://BUCKET/PATH, abfs://..., hdfs://HOST/PATH, file:///PATH) or a local path"
        ) from None
    if not path.strip("/"):
        raise UserError(f"{name} names no folder: give one, e.g. s3://BUCKET/FOLDER (or a bucket: s3://BUCKET/)")
    return Location(fs, path, name)


def message(exc: BaseException) -> str:
    """A filesystem's error as one line, without AWS's request id."""
    for line in str(exc).splitlines():
        if line.strip():
            return _REQUEST_ID.sub("", " ".join(line.split()))[:400]
    return type(exc).__name__


def error(exc: BaseException, where: Location, doing: str) -> UserError:
    """A filesystem's refusal as a one-line user error that says what to do."""
    text = message(exc)
    if _NO_BUCKET.search(text):
        hint = "the bucket does not exist (check its name, and the endpoint: ?endpoint_override=HOST:PORT)"
    elif _DENIED.search(text):
        hint = (
            "access denied: give credentials that allow it (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE,"
            " GOOGLE_APPLICATION_CREDENTIALS, an instance role) here and on every node of the cluster"
        )
    elif _UNREACHABLE.search(text):
        hint = "the storage does not answer (check the network and the endpoint: ?endpoint_override=HOST:PORT)"
    else:
        hint = ""
    return UserError(f"cannot {doing} {where.name}: " + (f"{hint} ({text})" if hint else text))


@contextlib.contextmanager
def failing(where: Location, doing: str) -> Iterator[None]:
    """Turn the filesystem's errors inside the block into :func:`error`'s user errors."""
    try:
        yield
    except (OSError, ValueError) as exc:  # pyarrow raises OSError (ArrowIOError) and ArrowInvalid
        raise error(exc, where, doing) from None


def download(source: Location, local: Path) -> None:
    """Copy the file ``source`` to the local file ``local``.

    Raises:
        UserError: it cannot be read.
    """
    import pyarrow.fs as pafs

    local.parent.mkdir(parents=True, exist_ok=True)
    with failing(source, "read"):
        pafs.copy_files(
            source.path, str(local), source_filesystem=source.fs, destination_filesystem=pafs.LocalFileSystem()
        )


def upload(local: Path, target: Location) -> None:
    """Write the local file ``local`` as ``target``, whole or not at all: one put on an object
    store (its upload becomes the object only when it completes), a temporary name renamed onto
    the target elsewhere.

    Raises:
        UserError: it cannot be written.
    """
    import mimetypes

    import pyarrow as pa
    import pyarrow.fs as pafs

    with failing(target, "write"), pa.memory_map(str(local)) as data:
        payload = data.read_buffer()  # mapped, not copied: written in one call, whatever its size
        if target.object_store:
            kind = mimetypes.guess_type(target.path)[0] or "application/octet-stream"
            with target.fs.open_output_stream(target.path, metadata={"Content-Type": kind}) as stream:
                stream.write(payload)
            return
        parent = target.path.rpartition("/")[0]
        target.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/{temp_name(PurePosixPath(target.path).suffix)}"
        try:
            with target.fs.open_output_stream(tmp) as stream:
                stream.write(payload)
            target.fs.move(tmp, target.path)
        finally:
            with contextlib.suppress(OSError, ValueError):
                if target.fs.get_file_info(tmp).type != pafs.FileType.NotFound:  # not moved: failed
                    target.fs.delete_file(tmp)


def remove_stale(folder: Location) -> None:
    """Delete the temporary files that a killed run left in ``folder`` (see
    :func:`ferry._io.remove_stale_temps`); object stores never have any. This is tidying: errors
    are ignored."""
    import pyarrow.fs as pafs

    if folder.object_store:
        return
    if str(folder.fs.type_name) == "local":
        remove_stale_temps(folder.path)
        return
    with contextlib.suppress(OSError, ValueError):
        for entry in folder.fs.get_file_info(pafs.FileSelector(folder.path, allow_not_found=True)):
            if entry.type == pafs.FileType.File and is_stale_temp(entry.base_name):
                folder.fs.delete_file(entry.path)
