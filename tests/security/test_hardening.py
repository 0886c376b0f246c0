"""Hardening around the credentials: security headers, CORS allowlist, trusted hosts
(DNS rebinding), header and body limits, the open mode, and ``serve --get``."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Spawn, browser_session, pin_snapshot
from tests.support import JSON, ServerProcess, run_cli

APP = "http://app.example:3000"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(spawn: Spawn) -> ServerProcess:
    return spawn(f'[server]\ncors_origins = ["{APP}"]\n')


def test_every_response_carries_the_security_headers(server: ServerProcess) -> None:
    with server.client() as http, httpx.Client(base_url=server.url) as stranger:
        responses = [http.get("/api/v1/pins"), http.get("/", headers={"Accept": "text/html"}),
                     http.get("/static/pinpanel.css"), http.get("/api/v1/pins/4"),
                     stranger.get("/api/v1/pins"), stranger.get("/login"),
                     stranger.get("/healthz")]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 401, 200, 200]
    for response in responses:
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["x-frame-options"] == "DENY"
        assert "access-control-allow-origin" not in headers


def test_cors_answers_only_allowlisted_origins(server: ServerProcess) -> None:
    def preflight(origin: str) -> httpx.Response:
        with httpx.Client(base_url=server.url) as browser:
            return browser.options("/api/v1/pins/18/on", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type"})

    allowed = preflight(APP)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == APP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-credentials" not in allowed.headers
    refused = preflight(EVIL)
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers

    with server.client() as http:
        before = pin_snapshot(server, http)
        from_app = http.get("/api/v1/pins", headers={"Origin": APP})
        assert from_app.headers["access-control-allow-origin"] == APP
        assert "Origin" in from_app.headers["vary"]
        read_elsewhere = http.get("/api/v1/pins", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in read_elsewhere.headers
        foreign = http.post("/api/v1/pins/18/on", headers={
            "Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
        assert foreign.status_code == 403 and "cross-site" in foreign.json()["detail"]
        null = http.post("/api/v1/pins/18/on", headers={"Origin": "null"})
        assert null.status_code == 403
        referer = http.post("/api/v1/pins/18/on", headers={"Referer": f"{EVIL}/x"})
        assert referer.status_code == 403
        assert pin_snapshot(server, http) == before
        app = http.post("/api/v1/pins/18/on", headers={"Origin": APP,
                                                        "Sec-Fetch-Site": "cross-site"})
        assert app.status_code == 200 and app.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.1", 200), ("localhost:8080", 200), ("192.168.1.20:8080", 200),
    ("[::1]:8080", 200), ("pinpanel.local", 200), ("pi.lan:8080", 200),
    ("garage.home.arpa", 200), ("evil.example", 400), ("pinpanel.local.evil.example", 400),
    ("", 400),
])
def test_only_local_host_names_are_answered_by_default(server: ServerProcess, host: str,
                                                       status: int) -> None:
    with server.client() as http:
        response = http.get("/api/v1/pins", headers={"Host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert "trusted_hosts" in response.json()["detail"]


def test_oversized_headers_and_bodies_are_refused(server: ServerProcess) -> None:
    # uvicorn's h11 (no httptools wheel, e.g. armv7l) refuses with a 400 of its own
    expected = b"431" if importlib.util.find_spec("httptools") else b"400"
    pad = b"X-Pad: " + b"a" * 65536 + b"\r\n"
    for pieces in ([pad], [pad[i:i + 4096] for i in range(0, len(pad), 4096)]):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            for piece in pieces:  # in one piece, and dripped in 4 KiB at a time
                try:
                    raw.sendall(piece)
                except OSError:  # refused and closed before the rest was sent
                    break
            with contextlib.suppress(OSError):
                raw.sendall(b"\r\n")
            head = raw.recv(200)
        assert head.split(b" ")[1] == expected, head
    session = browser_session(server, server.token or "")
    with httpx.Client(base_url=server.url, headers=session.header) as browser:
        big = browser.post("/toggle?pin=18", data={"csrf_token": session.csrf,
                                                   "pad": "x" * 10_000})
        assert big.status_code == 413
    with server.client() as http:
        assert http.get("/healthz").status_code == 200  # still serving


@pytest.fixture(scope="module")
def open_server(spawn: Spawn) -> ServerProcess:
    """Auth off, and an explicit host list (two settings that do not interact)."""
    return spawn('[server]\ntrusted_hosts = ["127.0.0.1", "pinpanel.example.org", "*.lan"]\n',
                 auth=False)


def test_configured_trusted_hosts_replace_the_default(open_server: ServerProcess) -> None:
    with open_server.client() as http:
        for host, status in (("pinpanel.example.org", 200), ("pi.lan", 200),
                             ("127.0.0.1", 200), ("192.168.1.20", 400),
                             ("pinpanel.local", 400), ("example.org", 400)):
            assert http.get("/healthz", headers={"Host": host}).status_code == status, host


def test_open_mode_restores_the_tutorial_with_a_warning(open_server: ServerProcess) -> None:
    server = open_server
    assert server.token is None
    assert "authentication is OFF" in server.log()
    assert not (server.data_dir / "first-login.txt").exists()
    with httpx.Client(base_url=server.url) as anyone:
        assert anyone.get("/api/list", headers=JSON).json() == {"18": False, "23": False,
                                                                "24": False}
        assert anyone.post("/api/toggle/18", headers=JSON).json() == {"Success": True}
        page = anyone.get("/", headers={"Accept": "text/html"})
        assert "Authentication is off" in page.text
        assert anyone.get("/login").status_code == 303
        # still no drive-by form posts from other web pages
        drive_by = anyone.post("/toggle?pin=23", headers={"Origin": EVIL,
                                                           "Sec-Fetch-Site": "cross-site"})
        assert drive_by.status_code == 403
        assert anyone.post("/toggle?pin=23").status_code == 303
        assert anyone.get("/api/v1/pins/23").json()["state"] is True


def test_serve_get_acts_as_the_operator(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    result = run_cli("serve", "--data-dir", data, "--get", "/api/v1/tokens")
    assert result.returncode == 0, result.stderr
    assert '"tokens":[]' in result.stdout  # it made no token either
