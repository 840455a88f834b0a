"""ONNX Runtime Web (WebAssembly) in headless Chromium: the browser as a verify backend.

A session serves the model, onnxruntime-web's files and a small harness page from 127.0.0.1
(exactly those files, under a random path, to requests addressed to 127.0.0.1 or localhost),
opens it in Chromium through Playwright and runs the model in the page. Arrays cross into the
page and back as base64 bytes; the time reported for a run is the page's own ``session.run``
time (``performance.now``), not the transfer.
"""

from __future__ import annotations

import base64
import contextlib
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ferry.backends.base import Backend, BackendInfo, RunOutput, Session
from ferry.errors import MissingDependencyError, UnsupportedModelError, UserError, first_line
from ferry.onnx_file import graph_io

_HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>ferry ort-web harness</title>
<script src="ort.wasm.min.js"></script></head>
<body><script>
"use strict";
let session = null;
const TYPED = {float32: Float32Array, float64: Float64Array, uint8: Uint8Array, int8: Int8Array,
  int32: Int32Array, int64: BigInt64Array, bool: Uint8Array};
function decode(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TYPED[type](bytes.buffer);
}
function encode(typed) {
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
window.ferryLoad = async (url, threads) => {
  ort.env.wasm.wasmPaths = "./";
  if (threads > 0) ort.env.wasm.numThreads = threads;
  session = await ort.InferenceSession.create(url, {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
  return {isolated: self.crossOriginIsolated, threads: ort.env.wasm.numThreads, version: ort.env.versions.web};
};
window.ferryRun = async (feeds) => {
  const tensors = {};
  for (const [name, f] of Object.entries(feeds)) tensors[name] = new ort.Tensor(f.type, decode(f.data, f.type), f.dims);
  const t0 = performance.now();
  const out = await session.run(tensors);
  const ms = performance.now() - t0;
  const result = {};
  for (const [name, v] of Object.entries(out)) result[name] = {type: v.type, dims: Array.from(v.dims), data: encode(v.data)};
  return {ms, outputs: result};
};
</script></body></html>
"""

# numpy dtype names the harness passes to onnxruntime-web's wasm build.
_PAGE_DTYPES = {"float32", "uint8", "int8", "int32", "int64", "bool", "float64"}


def page_files(model: str | os.PathLike[str], dist: Path) -> dict[str, bytes | Path]:
    """What the harness page needs, by URL name: the page, the runtime's files and the model; no more."""
    from ferry import _browser as web

    return {
        "harness.html": _HARNESS.encode("utf-8"),
        "model.onnx": Path(model),
        **{n: dist / n for n in web.RUNTIME_FILES},
    }


def _shutdown(stack: contextlib.ExitStack, pages: list[Any]) -> None:
    from ferry import _browser as web

    while pages:
        web.discard_page(pages.pop())  # no Playwright call here: see web.discard_page
    stack.close()


class OrtWebSession(Session):
    backend = "ort-web"

    def __init__(self, path: str | os.PathLike[str], *, threads: int = 0) -> None:
        super().__init__()
        import onnx

        from ferry import _browser as web

        dist = web.ort_web_dist()
        if dist is None:
            raise MissingDependencyError(web.ORT_WEB_HINT)
        self.inputs, self.outputs = graph_io(onnx.load(os.fspath(path), load_external_data=False))
        unsupported = [i.describe() for i in (*self.inputs, *self.outputs) if i.dtype not in _PAGE_DTYPES]
        if unsupported:
            raise UnsupportedModelError(f"ort-web: this harness cannot pass tensors of {', '.join(unsupported)}")
        self._stack = contextlib.ExitStack()
        self._pages: list[Any] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._stack, self._pages)
        try:
            base = self._stack.enter_context(web.serve(page_files(path, dist)))
            browser = web.browser()
            self._page = browser.page(base + "harness.html")
            self._pages.append(self._page)
            try:
                loaded = self._page.evaluate("([url, threads]) => ferryLoad(url, threads)", ["model.onnx", threads])
            except Exception as exc:  # playwright's Error carries the page's exception text
                raise UnsupportedModelError(
                    f"ONNX Runtime Web cannot load {path}: {first_line(exc, limit=400)}"
                ) from exc
        except BaseException:
            self.close()
            raise
        self.settings = {
            "precision": "fp32",
            "execution_provider": "wasm",
            "onnxruntime_web": loaded.get("version") or web.ort_web_version(dist),
            "chromium": browser.version,
            "threads": loaded.get("threads"),
            "cross_origin_isolated": loaded.get("isolated"),
            "timing": "session.run inside the page (performance.now), without the transfer",
        }
        self._last_ms = 0.0

    def run(self, feeds: Any) -> RunOutput:
        result = super().run(feeds)
        return RunOutput(outputs=result.outputs, seconds=self._last_ms / 1000)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        payload = {
            name: {
                "type": str(arr.dtype),
                "dims": list(arr.shape),
                "data": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii"),
            }
            for name, arr in feeds.items()
        }
        try:
            answer = self._page.evaluate("(feeds) => ferryRun(feeds)", payload)
        except Exception as exc:  # playwright's Error carries the page's exception text
            raise UserError(f"ONNX Runtime Web failed to run the model: {first_line(exc, limit=400)}") from exc
        self._last_ms = float(answer["ms"])
        outputs = {}
        for info in self.outputs:
            out = answer["outputs"][info.name]
            raw = base64.b64decode(out["data"])
            outputs[info.name] = np.frombuffer(raw, dtype=np.dtype(out["type"])).reshape(out["dims"]).copy()
        return outputs

    def close(self) -> None:
        """Close the page and stop the local server."""
        from ferry import _browser as web

        while self._pages:
            web.close_page(self._pages.pop())
        self._finalizer()
        super().close()


class OrtWebBackend(Backend):
    """ONNX Runtime Web's WebAssembly build, run by headless Chromium (what ``--target web`` ships)."""

    name = "ort-web"
    artifact = "onnx"
    extra = "web"

    def version(self) -> str | None:
        from ferry import _browser as web

        if web.missing():
            return None
        dist = web.ort_web_dist()
        return web.ort_web_version(dist) if dist else None

    def info(self) -> BackendInfo:
        from ferry import _browser as web

        reason = web.missing()
        return BackendInfo(self.name, self.version() or "", not reason, reason)

    def require(self) -> None:
        from ferry import _browser as web

        reason = web.missing()
        if reason:
            raise MissingDependencyError(f"ort-web: {reason}")

    def load(self, artifact: Any, **options: Any) -> OrtWebSession:
        self.require()
        return OrtWebSession(artifact, threads=int(options.get("threads") or 0))


__all__ = ["OrtWebBackend", "OrtWebSession"]
