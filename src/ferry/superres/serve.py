"""``ferry serve`` for Y-channel super-resolution models: ``POST /upscale`` and a page at ``/``.

``/upscale`` takes an image as the raw request body and returns it upscaled through the colour
pipeline of ``ferry upscale`` (EXIF orientation applied, Y through the network, Cb/Cr and alpha
bicubic, ICC profile and EXIF kept, 16-bit images kept at 16 bits, PNG at zlib level 4): one
request gives the file ``ferry upscale`` writes on the same runtime. The network runs through the
server's batching queue, so concurrent uploads of one size share a call. Decoding and encoding
run in worker threads, off the event loop.
"""

from __future__ import annotations

import html
import io
import json
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ferry.errors import UserError
from ferry.serve import Endpoint, ProtocolError, ServeContext
from ferry.superres.upscale import Planes, merge_planes, open_image, save_image, split_planes

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

#: ``?format=`` -> (file suffix, media type)
FORMATS = {
    "png": (".png", "image/png"),
    "jpeg": (".jpg", "image/jpeg"),
    "jpg": (".jpg", "image/jpeg"),
    "webp": (".webp", "image/webp"),
    "tiff": (".tif", "image/tiff"),
}
PNG_COMPRESSION = 4  # ferry upscale's default


def _decode(body: bytes, max_pixels: int) -> tuple[Planes, dict[str, Any], tuple[int, int]]:
    """The uploaded image taken apart for the network; 413 past ``max_pixels`` (read from the
    header, before decoding), 400 for bytes that are not an image."""
    if not body:
        raise ProtocolError(400, "the body is empty: send the image's bytes (Content-Type: image/...)")
    try:
        with Image.open(io.BytesIO(body)) as probe:
            width, height = probe.size
            suffix = "." + (probe.format or "img").lower()
    except UnidentifiedImageError:
        raise ProtocolError(400, "the body is not an image ferry can read (PNG, JPEG, WebP, TIFF, BMP)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ProtocolError(400, f"the image cannot be read: {exc}") from None
    if width * height > max_pixels:
        raise ProtocolError(413, f"the image has {width}x{height} pixels, more than {max_pixels} (--max-pixels)")
    with tempfile.TemporaryDirectory(prefix="ferry-serve-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(body)
        try:
            img, info = open_image(path)
        except UserError as exc:
            raise ProtocolError(400, str(exc).replace(str(path), "the upload")) from None
    return split_planes(img), info, img.size


def _encode(planes: Planes, y_big: np.ndarray, info: dict[str, Any], suffix: str) -> bytes:
    big = merge_planes(planes, y_big)
    with tempfile.TemporaryDirectory(prefix="ferry-serve-") as tmp:
        target = Path(tmp) / f"upscaled{suffix}"
        try:
            save_image(big, target, info, PNG_COMPRESSION)
        except UserError as exc:
            raise ProtocolError(400, str(exc).replace(str(target), "the result")) from None
        return target.read_bytes()


def endpoints(ctx: ServeContext) -> dict[str, Endpoint]:
    """``POST /upscale`` and ``GET /`` for a Y-channel super-resolution model."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, Response

    input_name, output_name = ctx.inputs[0].name, ctx.outputs[0].name

    async def upscale(request: Request) -> Response:
        fmt = request.query_params.get("format", "png").lower()
        if fmt not in FORMATS:
            raise ProtocolError(400, f"unknown format {fmt!r}; known: png, jpeg, webp, tiff")
        kind = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
        if not kind.startswith("image/") and kind != "application/octet-stream":
            raise ProtocolError(415, f"Content-Type {kind!r}: send the image's bytes as image/png, image/jpeg, ...")
        body = await ctx.read_body(request)
        planes, info, (width, height) = await run_in_threadpool(_decode, body, ctx.config.max_pixels)
        outputs = await ctx.infer({input_name: planes.y})
        suffix, media = FORMATS[fmt]
        data = await run_in_threadpool(_encode, planes, outputs[output_name], info, suffix)
        scale = ctx.info.scale or 1
        return Response(
            data,
            media_type=media,
            headers={"X-Image-Size": f"{width}x{height} -> {width * scale}x{height * scale}"},
        )

    page = resources.files("ferry.superres").joinpath("assets", "serve", "index.html").read_text(encoding="utf-8")
    page = page.replace("{{MODEL}}", html.escape(json.dumps(ctx.name)[1:-1])).replace(
        "{{SCALE}}", str(ctx.info.scale or "")
    )

    async def index(request: Request) -> Response:
        return HTMLResponse(
            page,
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; script-src 'unsafe-inline';"
                " style-src 'unsafe-inline'",
                "Cache-Control": "no-store",
            },
        )

    return {"/upscale": Endpoint(("POST",), upscale), "/": Endpoint(("GET",), index)}
