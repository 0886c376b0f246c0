"""HTTPS end to end: a throwaway certificate made here, pinpanel serving TLS itself, a
client that verifies it, and the session cookie marked Secure."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from pinpanel.web.security import SESSION_COOKIE
from tests.security.conftest import Spawn
from tests.support import JSON, make_certificate


def test_https_end_to_end(spawn: Spawn, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server = spawn(None, "--certfile", str(cert), "--keyfile", str(key), scheme="https")
    assert server.url.startswith("https://")
    trust = ssl.create_default_context(cafile=str(cert))
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, verify=trust, headers=headers) as http:
        assert http.get("/api/list", headers=JSON).json() == {"18": False, "23": False,
                                                              "24": False}
        assert http.post("/api/toggle/18", headers=JSON).json() == {"Success": True}
        assert http.get("/api/v1/pins/18").json()["state"] is True
    with httpx.Client(base_url=server.url, verify=trust) as browser:
        login = browser.post("/login", data={"token": server.token})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert cookie.startswith(SESSION_COOKIE) and "; secure" in cookie
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/api/v1/pins").status_code == 200  # the cookie came back
    with pytest.raises(httpx.ConnectError):  # the certificate is checked, not waved through
        httpx.get(f"{server.url}/healthz", verify=True)
    with pytest.raises(httpx.HTTPError):  # and plain HTTP is not spoken on that port
        httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    assert "pinpanel on https://" in server.log()
