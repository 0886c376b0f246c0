"""Every HTTP request's way in: proxy trust, security, metrics and errors in one layer.

Each of these was its own pure ASGI middleware, plus Starlette's two error layers and the
compression layer, and each wrapped ``send`` in a closure of its own: seven calls per
message, two messages per answer, on the hottest routes more CPU than the route itself
(#21: py-spy put the wrapper chain at 15-40 % of a request). :class:`Gate` does the same
work, in the same order, with one ``send`` wrapper and nothing else between the server and
the route:

1. a trusted proxy's forwarded headers rewrite the scope (:mod:`pinpanel.web.proxy`);
2. the security layer's checks (:meth:`SecurityMiddleware.admit`: host, CORS, route
   policy, origin, credentials, scope, CSRF); a refusal is answered here;
3. the route, through the router, on the security layer's route match;
4. what a route raises becomes the app's exception handler's answer, as Starlette's
   ``ExceptionMiddleware`` and ``ServerErrorMiddleware`` did (an unexpected error is
   answered 500, then re-raised for the server to log and close);
5. every answer, refusals and errors included, gets the security headers (a route's own
   win) and is counted by route, method and status when it starts;
6. a client that accepts gzip gets Starlette's ``GZipMiddleware`` around the route; for
   any other, ``Vary: Accept-Encoding`` is added where gzip's layer would have compressed
   (see :class:`pinpanel.web.assets.Compression`).

WebSocket and lifespan events still go through the app's Starlette middleware stack,
which keeps the separate layers for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from pinpanel.web import assets
from pinpanel.web.metrics import RequestCounts, route_label
from pinpanel.web.proxy import ForwardedHeaders, read_hop
from pinpanel.web.routing import RouteTable, TableRouter
from pinpanel.web.security import SecurityMiddleware, add_headers

Handler = Callable[[Request, Exception], Awaitable[Response]]
_START = "http.response.start"
_BODY = "http.response.body"


class Gate:
    """The app's HTTP entry (see the module docstring); ``security`` and ``proxy`` are the
    same objects the WebSocket path uses, so both apply one configuration."""

    def __init__(self, router: TableRouter, *, proxy: ForwardedHeaders,
                 security: SecurityMiddleware, counts: RequestCounts, table: RouteTable,
                 handlers: Mapping[Any, Handler],
                 minimum_size: int = assets.GZIP_MINIMUM_BYTES,
                 compresslevel: int = assets.GZIP_LEVEL) -> None:
        self.dispatch = router.dispatch
        self.gzip = assets.WeakETagOnCompressed(GZipMiddleware(
            router.dispatch, minimum_size=minimum_size, compresslevel=compresslevel))
        self.minimum_size = minimum_size
        self.proxy = proxy
        self.security = security
        self.counts = counts
        self.table = table
        for key, handler in handlers.items():
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"the exception handler for {key!r} must be async")
        self.unexpected: Handler | None = handlers.get(Exception)
        handled = {key: h for key, h in handlers.items() if key is not Exception}
        # What Starlette's ExceptionMiddleware puts in the scope: a function endpoint's own
        # wrapper (starlette.routing.request_response) answers with these handlers.
        self.scope_handlers: tuple[dict[Any, Handler], dict[int, Handler]] = (
            {k: h for k, h in handled.items() if not isinstance(k, int)},
            {k: h for k, h in handled.items() if isinstance(k, int)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        proxy = self.proxy
        if peer and proxy.trusted_peer(str(peer[0])):
            proxy.apply(scope, read_hop(scope["headers"], proxy.trusts))
        headers = dict(scope["headers"])
        security = self.security
        allowed_origin = security.allowed_origin(headers)
        extra = security.extra_headers(allowed_origin)
        counts, method = self.counts, scope["method"]
        minimum_size = self.minimum_size
        started = counted = False
        vary = False  # the identity path's decision on Vary is pending
        held: Message | None = None  # a start message, until the first body decides Vary

        async def gate_send(message: Message) -> None:
            nonlocal started, counted, vary, held
            kind = message["type"]
            if kind == _START:
                started = True
                if vary:
                    if message["status"] != 206 and not assets.excluded(
                            message.setdefault("headers", [])):
                        held = message
                        return
                    vary = False
                add_headers(message, extra)
                counted = True  # at the start, so a long event stream counts at once
                counts.add(route_label(self.table, scope), method, message["status"])
            elif held is not None:
                start, held, vary = held, None, False
                if kind == _BODY and (len(message.get("body", b"")) >= minimum_size
                                      or message.get("more_body", False)):
                    assets.add_vary(start)
                add_headers(start, extra)
                counted = True
                counts.add(route_label(self.table, scope), method, start["status"])
                await send(start)
            await send(message)

        try:
            try:
                answer, receive = await security.admit(scope, headers, allowed_origin,
                                                       receive)
                if answer is not None:
                    await answer(scope, receive, gate_send)
                    return
                scope["starlette.exception_handlers"] = self.scope_handlers
                if b"accept-encoding" in headers and _accepts_gzip(scope):
                    await self.gzip(scope, receive, gate_send)
                else:
                    vary = True
                    await self.dispatch(scope, receive, gate_send)
            except Exception as exc:  # noqa: BLE001 - answered and re-raised, as Starlette
                if held is not None:  # a start never sent: whatever follows replaces it
                    held, vary = None, False
                await self._failed(exc, scope, receive, gate_send, started=started)
        except BaseException:
            if not counted:
                counts.add(route_label(self.table, scope), method, 500)
            raise

    async def _failed(self, exc: Exception, scope: Scope, receive: Receive, send: Send, *,
                      started: bool) -> None:
        """Answer what the route raised, as Starlette's two error layers did."""
        handler = self._handler_for(exc)
        if handler is not None and not started:
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            exc.__traceback__ = None  # reused exception instances keep no old frames
            return
        if handler is not None:
            error = RuntimeError("Caught handled exception, but response already started.")
            error.__cause__ = exc
            exc = error
        if self.unexpected is not None:  # logs it; the answer only if none has started
            response = await self.unexpected(Request(scope, receive), exc)
            if not started:
                await response(scope, receive, send)
        raise exc

    def _handler_for(self, exc: Exception) -> Handler | None:
        by_class, by_status = self.scope_handlers
        status = getattr(exc, "status_code", None)
        if by_status and isinstance(status, int) and status in by_status:
            return by_status[status]
        for kind in type(exc).__mro__:
            if kind in by_class:
                return by_class[kind]
        return None


def _accepts_gzip(scope: Scope) -> bool:
    """Whether the first ``Accept-Encoding`` names gzip, as ``GZipMiddleware`` decides."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False
