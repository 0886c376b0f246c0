"""The whole app behind a trusted proxy, in process: what the forwarded headers change for
the login cookie, the failure counts, the origin check and the page's URLs, and that no
forwarded header, however malformed, makes it answer 500. (tests/browser/test_proxy.py does
the same through a real nginx with Chromium.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from pinpanel import auth, runtime
from pinpanel.config import load, with_overrides
from pinpanel.web.app import create_app

PROXY = "127.0.0.1"
BEHIND_TLS = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pins.example.org",
              "X-Forwarded-For": "203.0.113.7"}
ORIGIN = "https://pins.example.org"


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Starlette]:
    config = with_overrides(load(None), server__data_dir=str(tmp_path / "data"),
                            gpio__backend="simulated", auth__login_attempts_per_minute=3,
                            server__trusted_hosts=("pins.example.org", "127.0.0.1"))
    async with runtime.opened(config) as opened:
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry)
        app.state.token = auth.create_token(opened.store, "admin", "admin")
        yield app


def http(app: Starlette, peer: str = PROXY, **headers: str | bytes) -> httpx.AsyncClient:
    """A client whose connections come from ``peer`` (127.0.0.1: the proxy on the Pi)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(peer, 40000)),
                             base_url="http://127.0.0.1", headers=headers)


async def test_behind_the_proxy_the_cookie_is_secure_and_the_page_speaks_https(
        app: Starlette) -> None:
    async with http(app, **BEHIND_TLS, Origin=ORIGIN) as client:
        login = await client.post("/login", data={"token": app.state.token})
        assert login.status_code == 303, login.text
        assert "; secure" in login.headers["set-cookie"].lower()
        # httpx keeps a Secure cookie off plain http (the proxy speaks that to the app).
        session = login.headers["set-cookie"].split(";", 1)[0]
        page = await client.get("/", headers={"Accept": "text/html", "Cookie": session})
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|action)="([^"]+)"', page.text)
        assert links and [u for u in links if not u.startswith(("/", "#"))] == []  # paths
        toggled = await client.post("/toggle?pin=18", headers={
            "Authorization": f"Bearer {app.state.token}"})
        assert toggled.status_code == 303 and toggled.headers["location"] == "/"


async def test_the_page_links_by_path_even_from_a_proxy_that_does_not_say_https(
        app: Starlette) -> None:
    token = {"Authorization": f"Bearer {app.state.token}", "Accept": "text/html"}
    async with http(app, "192.168.1.50") as client:
        page = await client.get("/", headers=token)
        login = await client.get("/login")
    for html in (page.text, login.text):
        links = re.findall(r'(?:href|src|action)="([^"]+)"', html)
        assert links and [u for u in links if not u.startswith(("/", "#"))] == []


async def test_without_a_trusted_proxy_the_same_headers_are_ignored(app: Starlette) -> None:
    async with http(app, "192.168.1.50", **BEHIND_TLS, Origin=ORIGIN) as client:
        # The host is the socket's (127.0.0.1), so the https origin is another site.
        refused = await client.post("/login", data={"token": app.state.token})
        assert refused.status_code == 403
        login = await client.post("/login", data={"token": app.state.token},
                                  headers={"Origin": "http://127.0.0.1"})
        assert login.status_code == 303
        assert "secure" not in login.headers["set-cookie"].lower()


async def test_the_origin_check_compares_the_forwarded_scheme_and_host(app: Starlette) -> None:
    async with http(app, **BEHIND_TLS) as client:
        for origin, status in ((ORIGIN, 303), ("http://pins.example.org", 403),
                               ("https://127.0.0.1", 403), ("https://evil.example", 403)):
            answer = await client.post("/login", data={"token": app.state.token},
                                       headers={"Origin": origin})
            assert answer.status_code == status, (origin, answer.text)


async def test_failed_logins_count_per_forwarded_client(app: Starlette) -> None:
    async def codes(client: httpx.AsyncClient) -> list[int]:
        return [(await client.post("/login", data={"token": "pp_wrong"})).status_code
                for _ in range(4)]

    async with http(app, **{**BEHIND_TLS, "Origin": ORIGIN}) as first:
        first_codes = await codes(first)
    assert first_codes[0] == 401 and first_codes[-1] == 429
    other = {**BEHIND_TLS, "Origin": ORIGIN, "X-Forwarded-For": "203.0.113.8"}
    async with http(app, **other) as second:
        assert (await codes(second))[0] == 401  # another browser behind the same proxy
    # A client that is not the proxy cannot pick someone else's address to count against.
    forged = {**BEHIND_TLS, "X-Forwarded-For": "203.0.113.9"}
    async with http(app, "192.168.1.50", **forged, Origin="http://127.0.0.1") as stranger:
        assert (await codes(stranger))[-1] == 429
    async with http(app, **{**BEHIND_TLS, "Origin": ORIGIN,
                            "X-Forwarded-For": "203.0.113.9"}) as victim:
        assert (await codes(victim))[0] == 401


@pytest.mark.parametrize("headers", [
    {"Forwarded": 'for="[::1'}, {"Forwarded": ";;,,;"}, {"Forwarded": "for=\x7f"},
    {"X-Forwarded-For": "[" * 200}, {"X-Forwarded-Host": b"\xff\xfe"},
    {"X-Forwarded-Host": "[::1]:99999"}, {"X-Forwarded-Proto": "https, , ,"},
    {"X-Forwarded-Host": "a:", "X-Forwarded-Proto": "HTTPS"},
    {"Forwarded": "host=[fe80::1%25eth0]:1;proto=https"},
])
async def test_malformed_forwarded_headers_never_answer_500(
        app: Starlette, headers: dict[str, str | bytes]) -> None:
    async with http(app, **headers) as client:
        for path in ("/healthz", "/api/v1/pins", "/"):
            answer = await client.get(path, headers={"Authorization":
                                                     f"Bearer {app.state.token}"})
            assert answer.status_code < 500, (path, answer.text)
        login = await client.post("/login", data={"token": "pp_wrong"})
        assert login.status_code in (400, 401, 403), login.text
