"""The Starlette application factory: routes, middleware, handlers and lifespan in one call.

No module-level app and no decorators: :func:`create_app` is handed the config, the running
board and what the runtime built for the web (the store handle, the keyring), so tests and
the runtime build exactly the app they need and nothing reaches through the board for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from pinpanel.auth import Keyring
from pinpanel.automation.rulebook import RuleBook
from pinpanel.automation.schedules import ScheduleBook
from pinpanel.board import Board
from pinpanel.config import Config, load
from pinpanel.live_config import LiveConfig
from pinpanel.sensors.sampler import Sampler
from pinpanel.store import Store
from pinpanel.telemetry import Telemetry
from pinpanel.web import (
    api,
    assets,
    automation_page,
    backup,
    charts,
    compat,
    docs,
    guests,
    history,
    homekit,
    login,
    metrics,
    openapi,
    pages,
    proxy,
    pwa,
    rules,
    scenes,
    schedules,
    security,
    sensors,
    sliders,
    stream,
    tokens,
)
from pinpanel.web import settings as pin_settings
from pinpanel.web.gate import Gate
from pinpanel.web.homekit import HomeKitPanel
from pinpanel.web.problems import EXCEPTION_HANDLERS
from pinpanel.web.routing import ApiMount, RouteTable, TableRouter


def app_routes() -> list[BaseRoute]:
    """Every route, each declared once with its policy and its OpenAPI operation."""
    return [
        *pages.routes(),
        *login.routes(),
        *compat.routes(),
        *sliders.routes(),
        *api.routes(),
        *scenes.routes(),
        *schedules.routes(),
        *automation_page.routes(),
        *rules.routes(),
        *tokens.routes(),
        *pin_settings.routes(),
        *guests.routes(),
        *homekit.routes(),
        *backup.routes(),
        *history.routes(),
        *sensors.routes(),
        *charts.routes(),
        *stream.routes(),
        *metrics.routes(),
        *pwa.routes(),
        *docs.routes(),
        ApiMount("/static", assets.StaticAssets(packages=[("pinpanel.web", "static")]),
                 name="static", policy="open"),
    ]


def spec(routes: list[BaseRoute] | None = None, config: Config | None = None,
         ) -> dict[str, Any]:
    """The OpenAPI document of ``routes`` (default: the app's) under ``config``."""
    return openapi.build_spec(app_routes() if routes is None else routes,
                              load(None) if config is None else config,
                              security.OPENAPI_SECURITY_SCHEMES)


class PinpanelApp(Starlette):
    """Starlette with a router that dispatches on the security layer's route match, and
    HTTP requests let in by one :class:`~pinpanel.web.gate.Gate` instead of the middleware
    stack (which WebSocket and lifespan events still take)."""

    def __init__(self, table: RouteTable, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.router = self.table_router = TableRouter(table, lifespan=kwargs.get("lifespan"))
        self.gate: Gate | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gate is not None and scope["type"] == "http":
            scope["app"] = self
            await self.gate(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(config: Config, board: Board, store: Store, keyring: Keyring,
               telemetry: Telemetry, *, own_board: bool = False,
               sensors: Sampler | None = None,
               schedules: ScheduleBook | None = None,
               rules: RuleBook | None = None,
               extra_routes: Sequence[BaseRoute] = (),
               settings: LiveConfig | None = None,
               homekit: HomeKitPanel | None = None) -> Starlette:
    """Build the web app over ``board``.

    ``store`` serves the history reads, ``keyring`` the tokens and sessions and
    ``telemetry`` the metrics; the runtime builds and feeds them. The runtime starts and
    closes the board itself (the MQTT bridge shares it); with ``own_board`` the app's
    lifespan does it instead, for in-process tests. ``extra_routes`` are another
    adapter's (the hub's), made ``ApiRoute`` by the runtime: served and documented alike.
    ``homekit`` is the HomeKit adapter's bridge (None: ``[homekit]`` is off), for its page.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own_board:
            await board.start()
        # Everything built so far (modules, routes, templates, the board) lives as long as
        # the process: out of the collector's sight, so a collection only walks what
        # requests allocate (it was ~6% of a request's CPU, scanning the same objects).
        gc.freeze()
        try:
            yield
        finally:
            app.state.shutdown.set()  # ends open event streams (the runtime sets it sooner)
            if own_board:
                await board.close(config.gpio.on_exit)

    table = RouteTable([*extra_routes, *app_routes()])
    request_counts = metrics.RequestCounts()
    guard = security.Guard.create(config, keyring)
    # The layers as separate middleware, for WebSocket and lifespan events; HTTP requests
    # take the gate below, which does the same in one layer. Outermost: a trusted proxy's
    # forwarded headers rewrite scheme, client and host before any layer reads them (see
    # web/proxy.py). Then the metrics, so responses from every other layer (a 401 too) are
    # counted. Every request passes the security layer before any route (see
    # web/security.py); its route match is the one the router dispatches on.
    middleware: list[Middleware] = [
        Middleware(proxy.ForwardedHeaders, trusted=config.server.forwarded_allow_ips),
        Middleware(metrics.RequestMetrics, counts=request_counts, table=table),
        Middleware(security.SecurityMiddleware, guard=guard, table=table),
        # Inside the security layer: what it answers itself is small; never the stream.
        *assets.compression()]
    app = PinpanelApp(table, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS,
                      lifespan=lifespan)
    router = app.table_router
    app.gate = Gate(router, table=table, counts=request_counts,
                    proxy=proxy.ForwardedHeaders(router,
                                                 trusted=config.server.forwarded_allow_ips),
                    security=security.SecurityMiddleware(router, guard=guard, table=table),
                    handlers=EXCEPTION_HANDLERS)
    app.state.board = board
    app.state.store = store
    app.state.sensors = sensors  # the readings path (None without [[sensors]])
    app.state.schedules = schedules  # None: an app without the runtime's automation
    app.state.rules = rules
    app.state.config = config
    app.state.settings = settings  # the config file's editor (None: in-process tests)
    app.state.homekit = homekit  # the HomeKit bridge, for its page (None: [homekit] is off)
    app.state.max_body_bytes = config.server.max_body_bytes
    app.state.auth_enabled = config.auth.enabled
    app.state.guard = guard
    security.warn_unguarded(app.routes)
    app.state.openapi = spec(app.routes, config)
    app.state.timelines = history.TimelineCache()  # the page's 24-hour timelines
    app.state.page_cache = pages.PageCache()  # the page, rendered once per change or minute
    # Set when the server stops, so long-lived responses (the event stream) end promptly.
    app.state.shutdown = asyncio.Event()
    metrics.install(app, request_counts, telemetry)
    return app
