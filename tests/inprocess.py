"""The real web app in this process, for web-layer tests that need no server process.

``create_app`` over the runtime's own wiring (``runtime.opened``: the simulated board, a
temporary store, schedules, rules, telemetry), with the tokens made through the store. The
runtime and the app's lifespan run in a task of an anyio blocking portal (an event loop
in a thread of its own); :meth:`InProcessApp.client` is a sync ``httpx.Client`` whose
transport hands each request to httpx's ``ASGITransport`` on that loop. So a test written
against :meth:`tests.support.ServerProcess.client` moves here by changing its fixture only.

Keep a real process (``make_server``) where the process is the point: lifecycle, kill -9
durability, signals, the CLI, the event stream over a real socket, compression on the
wire, browsers, MQTT, and the e2e contract tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from pinpanel import auth, runtime
from pinpanel.config import Config, load, with_overrides


class _PortalTransport(httpx.BaseTransport):
    """A sync transport that runs each request through ASGITransport on the portal's loop."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            await request.aread()
            response = await self.asgi.handle_async_request(request)
            body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
            return httpx.Response(response.status_code, headers=response.headers,
                                  content=body, extensions=response.extensions)

        return self.portal.call(send)


@dataclass
class InProcessApp:
    """The runtime and the real app, opened on a portal's loop for as long as ``running``."""

    data_dir: Path
    config_text: str | None = None
    auth: bool = True
    #: With auth on, start makes one token of this scope through the store.
    token_scope: str | None = "admin"
    token: str | None = None
    url: str = "http://127.0.0.1"
    opened: runtime.Runtime | None = None
    app: Any = None
    portal: BlockingPortal | None = None
    keyring: auth.Keyring | None = None
    #: A HomeKitPanel handed to create_app (tests/fake_homekit.py), as the runtime would.
    homekit: Any = None

    @property
    def config_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.toml"

    def config(self) -> Config:
        path = None
        if self.config_text is not None:
            self.config_path.write_text(self.config_text)
            path = self.config_path
        overrides: dict[str, Any] = {"server__data_dir": str(self.data_dir)}
        if not self.auth:
            overrides["auth__enabled"] = False
        return with_overrides(load(path), **overrides)

    async def _serve(self, stop: anyio.Event, *,
                     task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                     ) -> None:
        from pinpanel.web.app import create_app

        config = self.config()
        async with runtime.opened(config) as opened:
            self.opened = opened
            if self.auth and self.token is None and self.token_scope:
                self.token = auth.create_token(opened.store, "tests", self.token_scope)
            self.keyring = auth.Keyring(opened.store)
            self.app = create_app(config, opened.board, opened.store, self.keyring,
                                  opened.telemetry,
                                  sensors=opened.sampler, schedules=opened.schedules,
                                  rules=opened.rules, homekit=self.homekit)
            async with self.app.router.lifespan_context(self.app):
                task_status.started()
                await stop.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator[InProcessApp]:
        with start_blocking_portal() as portal:
            self.portal = portal
            stop = portal.call(anyio.Event)
            future, _ = portal.start_task(self._serve, stop)
            try:
                yield self
            finally:
                portal.call(stop.set)
                future.result()

    def create_token(self, name: str, scope: str = "control") -> str:
        """A token made through the store, as ``pinpanel token create`` makes one.

        The same connection writes it, so SQLite's data_version does not move: the keyring
        is told, as the web's own token routes tell it.
        """
        assert self.opened is not None and self.portal is not None, "the app is not started"
        assert self.keyring is not None
        token = self.portal.call(auth.create_token, self.opened.store, name, scope)
        self.portal.call(self.keyring.invalidate)
        return token

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """A client of the running app with the bearer token (``token`` or the default)."""
        headers = dict(kwargs.pop("headers", {}))
        bearer = token or self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return self.anonymous(headers=headers, **kwargs)

    def anonymous(self, **kwargs: Any) -> httpx.Client:
        """A client of the running app with no credentials at all."""
        assert self.portal is not None, "the app is not started"
        return httpx.Client(base_url=self.url, transport=_PortalTransport(self.portal, self.app),
                            **kwargs)


#: The ``make_app`` fixture's type, as ``ServerFactory`` is ``make_server``'s.
AppFactory = Callable[..., InProcessApp]
