"""The hottest routes as plain ASGI endpoints, answering with bytes built once.

A Starlette function endpoint costs, per request, a wrapper that catches exceptions around
the route (the app's own exception middleware already does), a ``send`` wrapper, and a
``Response`` whose headers are assembled afresh. For the few routes that phones, the page
and Home Assistant poll or hit in bursts (the pin list, the switches) that was more than
the handler itself: :class:`JsonEndpoint` runs the handler with the same ``Request`` and
sends what it returns (status and JSON bytes) with a precomputed header block, as two
messages. Errors still raise (``Problem``, core errors) and reach the app's exception
handlers unchanged; the security layer in front of every route is untouched.

:class:`BodyCache` keeps a read route's encoded body for as long as what it shows has not
changed (see :meth:`pinpanel.board.Board.views_key`): between two committed changes every
poll answers the same bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

#: What a fast handler returns: the status and the JSON body, already encoded.
Reply = tuple[int, bytes]
JSON_TYPE = b"application/json"


def encode(value: Any) -> bytes:
    """JSON as Starlette's ``JSONResponse`` writes it (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


class BytesEndpoint:
    """An ASGI endpoint around ``handler(request) -> (status, body)``, one content type.

    Its header block (all but the length) is built once. Starlette's ``Route`` calls an
    endpoint that is not a function as ASGI, directly.
    """

    def __init__(self, handler: Callable[[Request], Awaitable[Reply]], content_type: bytes,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.handler = handler
        self.tail = ((b"content-type", content_type), *headers)
        functools.update_wrapper(self, handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body = await self.handler(Request(scope, receive, send))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), *self.tail]})
        await send({"type": "http.response.body", "body": body})


class JsonEndpoint(BytesEndpoint):
    """A :class:`BytesEndpoint` answering JSON."""

    def __init__(self, handler: Callable[[Request], Awaitable[Reply]]) -> None:
        super().__init__(handler, JSON_TYPE)


class BodyCache:
    """One encoded body per key: the newest wins (a key holds what the body depends on)."""

    __slots__ = ("_body", "_key")

    def __init__(self) -> None:
        self._key: Hashable = None
        self._body = b""

    def get(self, key: Hashable, build: Callable[[], Any]) -> bytes:
        """The body for ``key``, encoding ``build()`` when the key moved (None: never kept)."""
        if key is not None and key == self._key:
            return self._body
        body = encode(build())
        if key is not None:
            self._key, self._body = key, body
        return body


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase), straight from the scope."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
