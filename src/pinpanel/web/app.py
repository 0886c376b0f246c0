"""The Starlette application factory: routes, middleware, handlers and lifespan in one call.

No module-level app and no decorators: :func:`create_app` is handed the config and the
running board, so tests and the runtime build exactly the app they need.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from pinpanel.board import Board
from pinpanel.config import Config
from pinpanel.web import (
    api,
    compat,
    history,
    login,
    metrics,
    openapi,
    pages,
    pwa,
    security,
    stream,
    tokens,
)
from pinpanel.web.problems import EXCEPTION_HANDLERS


def app_routes() -> list[BaseRoute]:
    return [
        *pages.routes(),
        *login.routes(),
        *compat.routes(),
        *api.routes(),
        *tokens.routes(),
        *history.routes(),
        *stream.routes(),
        *metrics.routes(),
        *pwa.routes(),
        *openapi.routes(),
        Mount("/static", StaticFiles(packages=[("pinpanel.web", "static")]), name="static"),
    ]


def create_app(config: Config, board: Board, *, own_board: bool = False) -> Starlette:
    """Build the web app over ``board``.

    The runtime starts and closes the board itself (the MQTT bridge shares it); with
    ``own_board`` the app's lifespan does it instead, for in-process tests.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_board:
            await board.start()
        try:
            yield
        finally:
            app.state.shutdown.set()  # ends open event streams (the runtime sets it sooner)
            if own_board:
                await board.close(config.gpio.on_exit)

    request_counts = metrics.RequestCounts()
    # Outermost, so responses from every other layer (a 401 too) are counted.
    middleware: list[Middleware] = [Middleware(metrics.RequestMetrics, counts=request_counts)]
    # Every request passes the security layer before any route (see web/security.py).
    guard = security.Guard.create(config, board.store)
    middleware.append(Middleware(security.SecurityMiddleware, guard=guard))
    app = Starlette(
        routes=app_routes(),
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.board = board
    app.state.config = config
    app.state.max_body_bytes = config.server.max_body_bytes
    app.state.auth_enabled = config.auth.enabled
    app.state.guard = guard
    security.warn_unguarded(app.routes)
    app.state.openapi = openapi.spec()
    app.state.timelines = history.TimelineCache()  # the page's 24-hour timelines
    app.state.page_cache = pages.PageCache()  # the page, rendered once per change or minute
    # Set when the server stops, so long-lived responses (the event stream) end promptly.
    app.state.shutdown = asyncio.Event()
    metrics.install(app, request_counts)
    return app
