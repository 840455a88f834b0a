"""ONNX Runtime Web in a real browser: the runtime's files, a local server and headless Chromium.

ferry never downloads anything at run time. The runtime comes from the npm package
``onnxruntime-web`` (``npm ci`` in ferry's checkout, or ``npm install onnxruntime-web`` anywhere,
found through ``FERRY_ORT_WEB`` or a ``node_modules`` folder above the working directory); the
browser is the system's Chromium (``FERRY_CHROMIUM`` or ``chromium`` on the PATH), driven by
Playwright's Python package (``pip install 'ferry[web]'``) without Playwright's own browser
download.

The local server here (:class:`LocalServer`) is also what ``ferry view`` serves Netron with: it
listens on 127.0.0.1, answers only requests addressed to 127.0.0.1 or localhost, and serves an
explicit list of files under a random path, never a folder.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import http.server
import io
import json
import os
import secrets
import shutil
import stat
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from ferry.errors import MissingDependencyError, UserError

#: The single-threaded-capable WebAssembly build: the loader, its module and the wasm binary.
RUNTIME_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEB_HINT = (
    "onnxruntime-web is not installed: run `npm ci` in ferry's checkout or `npm install onnxruntime-web`,"
    " or set FERRY_ORT_WEB to its folder"
)
CHROMIUM_HINT = "no Chromium found: install it (apt-get install chromium) or set FERRY_CHROMIUM to its path"
PLAYWRIGHT_HINT = "playwright is not installed: pip install 'ferry[web]'"
# Chromium without a network must not try to reach Google's services (connections are refused
# here, many at a time) nor need a sandbox it cannot create as root in a container.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _dist_of(folder: Path) -> Path | None:
    for candidate in (folder, folder / "dist", folder / "onnxruntime-web" / "dist"):
        if all((candidate / f).is_file() for f in RUNTIME_FILES):
            return candidate
    return None


def ort_web_dist() -> Path | None:
    """The ``dist`` folder of an installed onnxruntime-web, or ``None``."""
    env = os.environ.get("FERRY_ORT_WEB")
    if env:
        return _dist_of(Path(env))
    here = Path.cwd().resolve()
    source_checkout = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, source_checkout):
        found = _dist_of(folder / "node_modules")
        if found is not None:
            return found
    return None


def ort_web_version(dist: Path) -> str:
    """The onnxruntime-web version of a ``dist`` folder (from its package.json)."""
    meta = dist.parent / "package.json"
    try:
        return str(json.loads(meta.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def copy_runtime(dist: Path, folder: Path) -> list[str]:
    """Copy the WebAssembly runtime files into a page's folder; returns their names."""
    for name in RUNTIME_FILES:
        shutil.copyfile(dist / name, folder / name)
    return list(RUNTIME_FILES)


def chromium_path() -> str | None:
    """The Chromium executable to drive, or ``None``."""
    env = os.environ.get("FERRY_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing() -> str:
    """Why the browser runtime cannot run here ('' when it can)."""
    from ferry.registry import installed_version

    if installed_version("playwright", "playwright") is None:
        return PLAYWRIGHT_HINT
    if chromium_path() is None:
        return CHROMIUM_HINT
    if ort_web_dist() is None:
        return ORT_WEB_HINT
    return ""


# -- local servers: 127.0.0.1 only, a fixed set of files under a random path, Host checked --------

LOOPBACK = "127.0.0.1"
#: Content types by suffix; anything else is served as application/octet-stream.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".svg": "image/svg+xml",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
#: Cross-origin isolation lets onnxruntime-web use its threaded build.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_CHUNK = 1 << 20


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a request's ``Host`` header names this loopback server.

    A page on another site that rebinds its DNS name to 127.0.0.1 still sends its own name, so
    checking ``Host`` keeps such pages from reading what a local server serves.
    """
    if host is None:
        return False
    return host.strip().lower() in {LOOPBACK, "localhost", f"{LOOPBACK}:{port}", f"localhost:{port}"}


class _Entry:
    """One served file: bytes, or a regular file whose identity (device, inode) is taken now.

    A file is reopened for each request without following a symlink and served only while it is
    still the same file: swapping a symlink or another file in later gets a 404, not its content.
    """

    def __init__(self, name: str, content: bytes | str | os.PathLike[str]) -> None:
        suffix = os.path.splitext(name)[1].lower()
        self.content_type = (
            CONTENT_TYPES[".html"] if name == "" else CONTENT_TYPES.get(suffix, "application/octet-stream")
        )
        self._data: bytes | None = None
        self._path = ""
        self._identity = (0, 0)
        if isinstance(content, bytes):
            self._data = content
            return
        self._path = os.path.realpath(content)
        try:
            st = os.stat(self._path)
        except OSError as exc:
            raise UserError(f"cannot serve {os.fspath(content)}: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"cannot serve {os.fspath(content)}: not a regular file")
        self._identity = (st.st_dev, st.st_ino)

    def open(self) -> tuple[int, BinaryIO] | None:
        """The size and a stream of the content, or ``None`` when the file is gone or was replaced."""
        if self._data is not None:
            return len(self._data), io.BytesIO(self._data)
        try:
            fd = os.open(self._path, _OPEN_FLAGS)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != self._identity:
            os.close(fd)
            return None
        return st.st_size, os.fdopen(fd, "rb")


def _request_path(target: str) -> str | None:
    """The decoded path of an origin-form request target (``/a/b?q``); ``None`` for any other form."""
    if not target.startswith("/") or target.startswith("//"):
        return None
    path = target.split("?", 1)[0].split("#", 1)[0]
    return urllib.parse.unquote(path, errors="strict") if "%" in path else path


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the server's exact names; no listing, no file system lookup of the URL."""

    server_version = "ferry"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        server = self.server
        assert isinstance(server, _Server)
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not host_allowed(hosts[0], server.server_address[1]):
            self._refuse(403, "forbidden: this server answers only to 127.0.0.1 and localhost")
            return
        try:
            path = _request_path(self.path)
        except UnicodeDecodeError:
            path = None
        entry = server.entries.get(path) if path is not None else None
        opened = entry.open() if entry is not None else None
        if entry is None or opened is None:
            self._refuse(404, "not found")
            return
        size, stream = opened
        with stream:
            self.send_response(200)
            self.send_header("Content-Type", entry.content_type)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            left = size if body else 0
            while left > 0:
                chunk = stream.read(min(_CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _refuse(self, code: int, text: str) -> None:
        payload = f"{code} {text}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def end_headers(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        for key, value in server.extra_headers.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the random path stays on this machine
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the terminal clean: requests are not news."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, entries: dict[str, _Entry], extra_headers: Mapping[str, str]) -> None:
        self.entries = entries
        self.extra_headers = dict(extra_headers)
        super().__init__((LOOPBACK, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a browser that drops a connection early is not news
        super().handle_error(request, client_address)


def _bind(port: int, entries: dict[str, _Entry], headers: Mapping[str, str]) -> _Server:
    if not 0 <= port <= 65535:
        raise UserError(f"port {port} is out of range: give 1-65535, or 0 for a free port")
    try:
        return _Server(port, entries, headers)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {LOOPBACK} is in use: choose another port (0 picks a free one)") from exc
        if exc.errno == errno.EACCES:
            raise UserError(
                f"cannot listen on {LOOPBACK}:{port}: permission denied (ports below 1024 need root);"
                " choose another port (0 picks a free one)"
            ) from exc
        raise UserError(f"cannot listen on {LOOPBACK}:{port}: {exc.strerror or exc}") from exc


class LocalServer:
    """A read-only HTTP server on 127.0.0.1 that serves a fixed set of files and nothing else.

    Every file is served under a random path (``http://127.0.0.1:PORT/<token>/NAME``) that only
    the caller learns; a name that is not in ``files`` is a 404 whatever lies on disk (no
    listing, no ``..``, no dotfiles), and a request whose ``Host`` is not 127.0.0.1 or localhost
    is refused with 403.

    Args:
        files: URL name (``"index.html"``, ``"data/m.onnx"``; ``""`` is the folder's own URL) to
            bytes or to a regular file.
        port: port on 127.0.0.1; 0 picks a free one.
        headers: extra response headers.

    Raises:
        UserError: the port is out of range, in use or not allowed, or a file is not a regular file.
    """

    def __init__(
        self,
        files: Mapping[str, bytes | str | os.PathLike[str]],
        *,
        port: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.token = secrets.token_urlsafe(18)
        entries = {f"/{self.token}/{name}": _Entry(name, content) for name, content in files.items()}
        self._server = _bind(port, entries, headers or {})
        self.port = int(self._server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}/{self.token}/"
        self._thread: threading.Thread | None = None

    def start(self) -> LocalServer:
        """Serve from a background thread; returns the server."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, name="ferry-local-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve(
    files: Mapping[str, bytes | str | os.PathLike[str]], *, headers: Mapping[str, str] = ISOLATION_HEADERS
) -> Iterator[str]:
    """Serve exactly ``files`` on 127.0.0.1 (a free port) while the block runs; yields the base URL.

    ``files`` is what :class:`LocalServer` takes: URL name to bytes or a regular file. Responses
    carry cross-origin isolation headers by default.
    """
    with LocalServer(files, headers=headers) as server:
        yield server.url


class Browser:
    """Headless Chromium driven by Playwright's sync API.

    Playwright runs one event loop per thread and cannot start twice in a thread, so every
    caller shares the thread's browser through :func:`browser`; each caller opens its own pages
    and closes them. The browser stops when the process exits.
    """

    def __init__(self) -> None:
        from ferry.registry import installed_version

        if installed_version("playwright", "playwright") is None:
            raise MissingDependencyError(PLAYWRIGHT_HINT)
        executable = chromium_path()
        if executable is None:
            raise MissingDependencyError(CHROMIUM_HINT)
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        except Exception:
            self._pw.stop()
            raise
        self.version: str = self._browser.version

    def page(self, url: str, *, timeout_s: float = 60.0) -> Any:
        """Open a page in a fresh context (no shared cache or storage) and wait until it has loaded."""
        context = self._browser.new_context()
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        page.goto(url)
        return page

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a browser that already died has nothing to close
            self._browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()


_BROWSERS: dict[int, Browser] = {}


def browser() -> Browser:
    """This thread's headless Chromium, started on first use."""
    while _ORPHANS:  # pages whose owners were garbage-collected: closed here, in plain code
        close_page(_ORPHANS.pop())
    key = threading.get_ident()
    if key not in _BROWSERS:
        if not _BROWSERS:
            atexit.register(_close_browsers)
        _BROWSERS[key] = Browser()
    return _BROWSERS[key]


def close_page(page: Any) -> None:
    """Close a page and its context (errors ignored: the browser may be gone already)."""
    with contextlib.suppress(Exception):
        page.context.close()


_ORPHANS: list[Any] = []


def discard_page(page: Any) -> None:
    """Queue a page for closing by the next :func:`browser` call.

    For finalizers: the garbage collector may run one inside Playwright's own event loop, where a
    sync call would wait for itself forever.
    """
    _ORPHANS.append(page)


def _close_browsers() -> None:
    for b in _BROWSERS.values():
        b.close()
    _BROWSERS.clear()
