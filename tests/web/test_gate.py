"""The gate (web/gate.py): what the separate layers did, each still done for every answer.

Errors raised by a route, a refusal, an identity or gzip client: each answer carries the
security headers, is counted in the metrics, and an unexpected error is answered 500 and
then re-raised for the server, as Starlette's error layers did.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.web.problems import Problem
from pinpanel.web.replies import JsonEndpoint, Reply
from pinpanel.web.routing import ApiRoute
from pinpanel.web.security import SECURITY_HEADERS
from tests.inprocess import AppFactory, InProcessApp


async def _broken(request: Request) -> Response:
    raise RuntimeError("boom")


async def _refused(request: Request) -> Response:
    raise Problem(409, "not now")


async def _refused_reply(request: Request) -> Reply:
    raise Problem(422, "not that")


async def _big(request: Request) -> Response:
    return JSONResponse({"text": "x" * 4000})


def with_routes(server: InProcessApp) -> InProcessApp:
    """The app with four test routes added (the route table starts afresh on a new one)."""
    server.app.routes.extend([
        ApiRoute("/test/broken", _broken, methods=["GET"], name="t_broken", policy="read"),
        ApiRoute("/test/refused", _refused, methods=["GET"], name="t_refused", policy="read"),
        ApiRoute("/test/reply", JsonEndpoint(_refused_reply), methods=["POST"],
                 name="t_reply", policy="control"),
        ApiRoute("/test/big", _big, methods=["GET"], name="t_big", policy="read"),
    ])
    return server


def call(server: InProcessApp, method: str, path: str,
         headers: list[tuple[bytes, bytes]]) -> tuple[list[dict[str, Any]], BaseException | None]:
    """One request straight into the ASGI app: the messages it sent, what it raised."""
    sent: list[dict[str, Any]] = []

    async def run() -> BaseException | None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
                 "server": ("127.0.0.1", 80), "state": {},
                 "headers": [(b"host", b"127.0.0.1"), *headers]}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        try:
            await server.app(scope, receive, send)
        except Exception as exc:  # noqa: BLE001 - the test looks at what was raised
            return exc
        return None

    assert server.portal is not None
    return sent, server.portal.call(run)


def header_names(start: dict[str, Any]) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in start["headers"]}


def bearer(server: InProcessApp) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {server.token}".encode())]


def requests_counted(server: InProcessApp, route: str, status: int) -> int:
    with server.client() as http:
        text = http.get("/metrics").text
    label = f'pinpanel_http_requests_total{{route="{route}",method="GET",status="{status}"}}'
    return next((int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith(label)), 0)


def test_an_unexpected_error_is_a_500_with_the_headers_counted_and_raised(
        make_app: AppFactory) -> None:
    server = with_routes(make_app(token_scope="admin"))
    sent, raised = call(server, "GET", "/test/broken", bearer(server))
    assert isinstance(raised, RuntimeError) and str(raised) == "boom"  # the server logs it
    start, body = sent
    assert start["status"] == 500
    assert b"internal error" in body["body"]
    assert set(SECURITY_HEADERS) <= set(header_names(start).items())
    assert requests_counted(server, "/test/broken", 500) == 1


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/test/refused", 409),  # a function endpoint
    ("POST", "/test/reply", 422),  # a plain ASGI endpoint
])
def test_a_problem_raised_by_a_route_is_its_answer_with_the_headers(
        make_app: AppFactory, method: str, path: str, status: int) -> None:
    server = with_routes(make_app(token_scope="admin"))
    sent, raised = call(server, method, path, bearer(server))
    assert raised is None
    start, body = sent
    assert start["status"] == status
    assert f'"status":{status}'.encode() in body["body"]
    headers = header_names(start)
    assert headers[b"content-type"] == b"application/problem+json"
    assert set(SECURITY_HEADERS) <= set(headers.items())


def test_a_refusal_gets_the_headers_and_is_counted(make_app: AppFactory) -> None:
    server = with_routes(make_app(token_scope="admin"))
    sent, raised = call(server, "GET", "/test/big", [])
    assert raised is None
    assert sent[0]["status"] == 401
    assert set(SECURITY_HEADERS) <= set(header_names(sent[0]).items())
    assert requests_counted(server, "/test/big", 401) == 1


def test_vary_accept_encoding_where_gzip_would_compress(make_app: AppFactory) -> None:
    server = with_routes(make_app(token_scope="admin"))
    big, _ = call(server, "GET", "/test/big", bearer(server))
    assert header_names(big[0])[b"vary"] == b"Accept-Encoding"
    small, _ = call(server, "GET", "/test/refused", bearer(server))
    assert b"vary" not in header_names(small[0])
    zipped, _ = call(server, "GET", "/test/big",
                     [*bearer(server), (b"accept-encoding", b"gzip")])
    headers = header_names(zipped[0])
    assert headers[b"content-encoding"] == b"gzip"
    assert headers[b"vary"] == b"Accept-Encoding"
    assert set(SECURITY_HEADERS) <= set(headers.items())


def test_a_route_setting_a_security_header_keeps_its_own(make_app: AppFactory) -> None:
    async def framed(request: Request) -> Response:
        return Response("ok", headers={"X-Frame-Options": "SAMEORIGIN"})

    server = make_app(token_scope="admin")
    server.app.routes.append(ApiRoute("/test/framed", framed, methods=["GET"],
                                      name="t_framed", policy="read"))
    sent, _ = call(server, "GET", "/test/framed", bearer(server))
    assert [v for k, v in sent[0]["headers"] if k == b"x-frame-options"] == [b"SAMEORIGIN"]
