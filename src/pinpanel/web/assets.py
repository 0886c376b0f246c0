"""Static assets cached for a year when their URL names their content; text compressed.

A page links each asset as ``/static/app.js?v=<digest>``, the digest being a hash of the
file's bytes (:func:`version`, the ``asset_version`` of the templates). Such a URL always
means the same bytes, so it is served ``immutable`` for a year: a phone on a slow Wi-Fi
link loads the page with no request for its styles and scripts at all, and an upgrade (or an
edited file) is new URLs, fetched at once. A request without the digest, or with an old one
(a page cached from before an upgrade), gets the file with ``no-cache``: the browser may
keep it but asks again each time (an ``If-None-Match`` answered 304), so no unversioned URL
is ever stuck on old bytes.

Text responses (the page, JSON, the assets) are gzip-compressed above a minimum size by
Starlette's :class:`~starlette.middleware.gzip.GZipMiddleware`, which never compresses the
event stream (``text/event-stream`` is excluded, so each event goes out at once). A
compressed body is another representation of the resource, so its entity tag is made weak
(``W/"..."``), as nginx does: a cache never mixes the two, and a revalidation still
matches (Starlette's conditional check accepts a weak tag).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("static")
VERSION_PARAM = "v"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: Below this a response is sent as it is: the saving is less than a packet.
GZIP_MINIMUM_BYTES = 1024
#: The fastest level: the page is compressed on every request (its cache holds it
#: uncompressed, with per-request values spliced in), and on the page (21 KB -> 3.8 KB) level
#: 1 took 0.07 ms where 6 took 0.41 ms for 3.2 KB (a desktop core, 2026-12-02).
GZIP_LEVEL = 1
DIGEST_CHARS = 12

_digests: dict[str, tuple[tuple[int, int], str]] = {}


def digest_of(file: str) -> str:
    """The content hash of a file, recomputed only when its size or mtime changes."""
    path = Path(file)
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    known = _digests.get(file)
    if known is not None and known[0] == key:
        return known[1]
    value = hashlib.sha256(path.read_bytes()).hexdigest()[:DIGEST_CHARS]
    _digests[file] = (key, value)
    return value


def version(path: str) -> str:
    """The ``v`` for ``/static/<path>`` in a page: the digest of the file it serves."""
    return digest_of(str(STATIC_DIR / path))


class StaticAssets(StaticFiles):
    """Starlette's static files, with a cache lifetime that depends on the URL's ``v``."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            wanted = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get(
                VERSION_PARAM)
            current = None
            if wanted is not None:
                full_path, stat = await anyio.to_thread.run_sync(self.lookup_path, path)
                if stat is not None:
                    current = await anyio.to_thread.run_sync(digest_of, full_path)
            response.headers["Cache-Control"] = (
                IMMUTABLE if wanted is not None and wanted == current else REVALIDATE)
        return response


class WeakETagOnCompressed:
    """Marks the entity tag of a compressed response weak (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def weaken(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                etag = headers.get("etag")
                if etag and not etag.startswith("W/") and headers.get(
                        "content-encoding") == "gzip":
                    headers["etag"] = "W/" + etag
            await send(message)

        await self.app(scope, receive, weaken)


class Compression:
    """gzip for a client that accepts it; for any other, only what gzip's layer would add.

    A client that asks for gzip gets Starlette's :class:`GZipMiddleware` (its tags made
    weak). The rest (scripts, wrk, Home Assistant's polls) used to pass through that
    middleware's identity responder as well, which parses the headers of every response
    to add one ``Vary: Accept-Encoding`` to a body it would have compressed for another
    client; the same decision is made here on the raw header list.
    """

    def __init__(self, app: ASGIApp, minimum_size: int = GZIP_MINIMUM_BYTES,
                 compresslevel: int = GZIP_LEVEL) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.gzip = WeakETagOnCompressed(GZipMiddleware(
            app, minimum_size=minimum_size, compresslevel=compresslevel))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"accept-encoding":  # the first one decides, as in GZipMiddleware
                if b"gzip" in value:
                    await self.gzip(scope, receive, send)
                    return
                break
        await self.app(scope, receive, _identity(send, self.minimum_size))


def excluded(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether gzip's layer would send this response as it is (see :class:`Compression`)."""
    media = ""
    for name, value in headers:
        if name == b"content-encoding":
            return True
        if name == b"content-type" and not media:
            media = value.decode("latin-1").partition(";")[0].strip().lower()
    kinds = {media, media.partition("/")[0] + "/*"}
    if media.startswith("application/grpc+"):
        kinds.add("application/grpc")
    return not kinds.isdisjoint(DEFAULT_EXCLUDED_CONTENT_TYPES)


def _identity(send: Send, minimum_size: int) -> Send:
    """``send`` adding ``Vary: Accept-Encoding`` where a gzip client would get gzip."""
    held: list[Message] = []  # the start message, until the first body decides
    decided = False

    async def identity_send(message: Message) -> None:
        nonlocal decided
        kind = message["type"]
        if decided:
            await send(message)
        elif kind == "http.response.start":
            headers = message.setdefault("headers", [])
            if message["status"] == 206 or excluded(headers):
                decided = True
                await send(message)
            else:
                held.append(message)
        elif kind in ("http.response.body", "http.response.pathsend") and held:
            decided = True
            start = held.pop()
            if kind == "http.response.body" and (
                    len(message.get("body", b"")) >= minimum_size or
                    message.get("more_body", False)):
                add_vary(start)
            await send(start)
            await send(message)
        else:  # early hints, trailers
            await send(message)

    return identity_send


def add_vary(start: Message) -> None:
    headers = start["headers"] = list(start["headers"])
    for i, (name, value) in enumerate(headers):
        if name == b"vary":
            headers[i] = (name, bytes(value) + b", Accept-Encoding")
            return
    headers.append((b"vary", b"Accept-Encoding"))


def compression() -> list[Middleware]:
    """The compression layer, for the app's middleware list."""
    return [Middleware(Compression)]
