"""ONNX Runtime Web in a real browser: the runtime's files, a local server and headless Chromium.

ferry never downloads anything at run time. The runtime comes from the npm package
``onnxruntime-web`` (``npm ci`` in ferry's checkout, or ``npm install onnxruntime-web`` anywhere,
found through ``FERRY_ORT_WEB`` or a ``node_modules`` folder above the working directory); the
browser is the system's Chromium (``FERRY_CHROMIUM`` or ``chromium`` on the PATH), driven by
Playwright's Python package (``pip install 'ferry[web]'``) without Playwright's own browser
download.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ferry.errors import MissingDependencyError

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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 - the base class declares it as a plain class attribute
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".onnx": "application/octet-stream",
        ".json": "application/json",
    }

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the terminal clean: requests are not news."""

    def end_headers(self) -> None:
        # Cross-origin isolation lets onnxruntime-web use its threaded build.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def serve(folder: str | os.PathLike[str]) -> Iterator[str]:
    """Serve a folder on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="ferry-web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


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
