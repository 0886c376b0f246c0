"""Every route the app serves has a security policy, and the middleware enforces it.

Enumerates the real app's routes (Mounts included) in process. A route added later without
a policy fails here with a message that says where to add one, and answers 403 to
everyone meanwhile (default deny), which the last test proves with a route made up on
the spot.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinpanel import auth, runtime
from pinpanel.config import load, with_overrides
from pinpanel.web import security
from pinpanel.web.app import create_app
from pinpanel.web.routing import ApiMount, ApiRoute, policy_of
from tests.security.conftest import is_security_refusal
from tests.security.routes import probes


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Starlette]:
    config = with_overrides(load(None), server__data_dir=str(tmp_path / "data"),
                            gpio__backend="simulated")
    async with runtime.opened(config) as opened:
        yield create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry)


def http_to(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="http://127.0.0.1")


def test_every_route_has_a_policy(app: Starlette) -> None:
    missing = security.unguarded_routes(app.routes)
    assert not missing, (f"routes without a security policy: {missing}. Decide who may use "
                         f"each and {security.WHERE_TO_ADD}")
    names = {getattr(route, "name", None) for route in app.routes}
    assert all(isinstance(route, ApiRoute | ApiMount) for route in app.routes)
    assert len(names) == len(app.routes), "every route has a name of its own"
    policies = {policy_of(route) for route in app.routes}
    assert policies <= {"open", "read", "control", "admin"}
    opened = sorted(str(r.name) for r in app.routes if policy_of(r) == "open")
    assert opened == ["healthz", "login", "login_submit", "logout", "service_worker",
                      "static"], "only health, login/logout and static assets may be open"


async def test_the_middleware_enforces_every_routes_policy(app: Starlette) -> None:
    token = auth.create_token(app.state.board.store, "reader", "read")
    async with http_to(app) as http:
        for probe in probes(app.routes):
            policy = probe.policy
            response = await http.request(probe.method, probe.path, json=probe.json,
                                          data=probe.form, headers=probe.headers)
            if policy == "open":
                assert not is_security_refusal(response), (probe.id, response.text)
            else:
                assert response.status_code == 401, (probe.id, response.status_code)
                assert is_security_refusal(response)
            if policy in ("control", "admin"):
                with_read = await http.request(
                    probe.method, probe.path, json=probe.json, data=probe.form,
                    headers={**probe.headers, "Authorization": f"Bearer {token}"})
                assert with_read.status_code == 403, (probe.id, with_read.text)


async def test_a_route_without_a_policy_is_closed_to_everyone(
        app: Starlette, caplog: pytest.LogCaptureFixture) -> None:
    changed: list[str] = []

    async def new_thing(request: Request) -> Response:
        changed.append("oops")
        return JSONResponse({"ok": True})

    # A plain Starlette route: declared without a policy.
    app.router.routes.append(Route("/api/v1/new-thing", new_thing, methods=["GET", "POST"],
                                   name="new_thing"))
    admin = auth.create_token(app.state.board.store, "root", "admin")
    async with http_to(app) as http:
        for method in ("GET", "POST"):
            response = await http.request(method, "/api/v1/new-thing",
                                          headers={"Authorization": f"Bearer {admin}"})
            assert response.status_code == 403
            assert "declare it as an ApiRoute with a policy" in response.json()["detail"]
    assert changed == []
    with caplog.at_level(logging.WARNING, logger="pinpanel.web.security"):
        security.warn_unguarded(app.routes)
    assert "'new_thing' has no security policy" in caplog.text


async def test_websockets_get_the_same_rules(app: Starlette) -> None:
    """No route speaks WebSocket today; should one appear, it is closed without a login."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/api/v1/events", "raw_path": b"/api/v1/events",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "ws",
             "subprotocols": [], "asgi": {"version": "3.0"}, "app": app}
    await app(scope, receive, send)
    assert sent and sent[0] == {"type": "websocket.close", "code": 1008}


async def test_a_405_allows_the_methods_of_every_route_on_the_path(app: Starlette) -> None:
    """``/api/v1/pins/{pin}`` is two routes (GET and PUT), ``/api/v1/tokens`` too."""
    admin = auth.create_token(app.state.board.store, "root", "admin")
    async with http_to(app) as http:
        for path, allow in (("/api/v1/pins/18", "GET, HEAD, PUT"),
                            ("/api/v1/tokens", "GET, HEAD, POST"),
                            ("/api/v1/history", "GET, HEAD"),
                            ("/login", "GET, HEAD, POST")):
            for method in ("OPTIONS", "PATCH", "DELETE"):
                response = await http.request(method, path,
                                              headers={"Authorization": f"Bearer {admin}"})
                assert response.status_code == 405, (method, path, response.text)
                assert response.headers["allow"] == allow, (method, path)
                assert response.json()["status"] == 405


async def test_each_request_is_matched_against_the_routes_once(
        app: Starlette, monkeypatch: pytest.MonkeyPatch) -> None:
    """The security layer's match is the router's and the metrics' too."""
    calls: list[str] = []
    for route in app.routes:
        original = route.matches

        def counting(scope: object, original: object = original, name: str = route.name,
                     ) -> object:
            calls.append(name)
            return original(scope)  # type: ignore[operator]

        monkeypatch.setattr(route, "matches", counting)
    token = auth.create_token(app.state.board.store, "phone", "control")
    async with http_to(app) as http:
        headers = {"Authorization": f"Bearer {token}"}
        first = await http.post("/api/v1/pins/23/toggle", headers=headers)
        assert first.status_code == 200
        walked = len(calls)
        assert 0 < walked <= len(app.routes)  # one walk, stopping at the match
        again = await http.post("/api/v1/pins/23/toggle", headers=headers)
        assert again.status_code == 200 and len(calls) == walked  # remembered
        refused = await http.get("/api/v1/pins/23")  # no credentials: refused, still counted
        assert refused.status_code == 401
        metrics = await http.get("/metrics", headers=headers)
    assert 'route="/api/v1/pins/{pin}",method="GET",status="401"' in metrics.text
