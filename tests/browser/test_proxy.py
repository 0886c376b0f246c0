"""Behind a real nginx terminating TLS, as the README sets it up: Chromium logs in through
it, the page loads whole over https, Toggle works, the cookie is Secure; and forwarded
headers from anyone but the proxy change nothing.

nginx listens on 127.0.0.1 and ::1; Chromium comes in over ::1, so pinpanel (which only
nginx reaches, over 127.0.0.1) can tell the browser's address from the proxy's. The httpx
clients choose their own loopback source addresses (127.0.0.2 and up) to be other clients.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from pinpanel.web.security import SESSION_COOKIE
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.nginx import Nginx, spki_hash
from tests.support import ServerProcess

ATTEMPTS = 3
#: A hang guard for the page to show a change, never a timing assertion.
WAIT_MS = 15_000
CONFIG = f"[auth]\nlogin_attempts_per_minute = {ATTEMPTS}\n"
FORGED = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https",
          "X-Forwarded-Host": "evil.example", "Forwarded": "for=198.51.100.9;proto=https"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Nginx]]:
    """pinpanel (default forwarded_allow_ips) behind nginx running the README's block."""
    root = tmp_path_factory.mktemp("proxy")
    server = ServerProcess(root / "data", CONFIG).start()
    nginx = Nginx.in_front_of(server.port, root / "nginx")
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.kill()


@pytest.fixture(scope="module")
def chromium(stack: tuple[ServerProcess, Nginx]) -> Iterator[Any]:
    """Chromium trusting the throwaway certificate by its key (no error page is clicked)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed (scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    trust = f"--ignore-certificate-errors-spki-list={spki_hash(stack[1].cert)}"
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True,
            args=[*CHROMIUM_ARGS, trust])
        try:
            yield context
        finally:
            context.close()


def client_from(source: str, base_url: str, **kwargs: Any) -> httpx.Client:
    """An HTTP client whose connections come from ``source`` (any 127.x.y.z is local)."""
    transport = httpx.HTTPTransport(local_address=source, verify=kwargs.pop("verify", True))
    return httpx.Client(base_url=base_url, transport=transport, timeout=10, **kwargs)


def history_clients(server: ServerProcess) -> list[str | None]:
    with server.client() as http:
        return [row["client"] for row in http.get("/api/v1/history?pin=18").json()["items"]]


def test_chromium_logs_in_through_nginx_and_the_page_is_whole(
        stack: tuple[ServerProcess, Nginx], chromium: Any) -> None:
    server, nginx = stack
    page = chromium.new_page()
    requests: list[str] = []
    failed: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.goto(f"{nginx.url6}/login?token={server.token}")
    page.get_by_role("button", name="Sign in").click()  # the form post CSP must allow
    page.wait_for_url(f"{nginx.url6}/")
    page.wait_for_load_state("networkidle")

    # The page loaded its own styles and scripts, over https, nothing blocked or warned of.
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 10
    assert any(re.search(r"/static/.*\.css", u) for u in requests)
    assert sum(bool(re.search(r"/static/.*\.js", u)) for u in requests) >= 2
    assert requests and all(u.startswith(f"{nginx.url6}/") for u in requests), requests
    assert failed == [] and problems == [], (failed, problems)
    assert not re.search(r'(href|src|action)="http:', page.content())

    cookie = next(c for c in chromium.cookies(nginx.url6) if c["name"] == SESSION_COOKIE)
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # The form posts (CSP form-action) or live.js fetches, and the event stream through
    # nginx brings the new state back to the row.
    row = page.locator("#pin-18 .state-text")
    expect(row).to_have_text("Off", timeout=WAIT_MS)
    page.get_by_role("button", name="Toggle GPIO 18").click()
    expect(row).to_have_text("On", timeout=WAIT_MS)
    with server.client() as http:
        assert http.get("/api/v1/pins/18").json()["state"] is True
    # The change is recorded as the browser's (::1), not the proxy's (127.0.0.1).
    assert history_clients(server)[0] == "::1"
    assert failed == [] and problems == [], (failed, problems)
    page.close()


def test_forwarded_headers_from_anyone_but_the_proxy_change_nothing(
        stack: tuple[ServerProcess, Nginx]) -> None:
    server, nginx = stack
    # Straight to pinpanel from 127.0.0.2, which is not in forwarded_allow_ips.
    with client_from("127.0.0.2", server.url, headers=FORGED) as direct:
        login = direct.post("/login", data={"token": server.token})
        assert login.status_code == 303
        assert "secure" not in login.headers["set-cookie"].lower()  # https was not believed
        direct.cookies.clear()  # logged in, a post would need the session's CSRF token
        toggled = direct.post("/api/v1/pins/18/toggle", headers={
            "Authorization": f"Bearer {server.token}"})
        assert toggled.status_code == 200, toggled.text
        codes = [direct.post("/login", data={"token": "pp_wrong"}).status_code
                 for _ in range(ATTEMPTS + 1)]
        assert codes[0] == 401 and codes[-1] == 429, codes
    assert history_clients(server)[0] == "127.0.0.2"
    assert "failed login from 127.0.0.2" in server.log()
    assert "198.51.100.9" not in server.log()

    # Through nginx from 127.0.0.3 with the same forgeries: nginx replaces them, so the
    # failures are 127.0.0.3's own, and 127.0.0.2's lock-out is not shared.
    with client_from("127.0.0.3", nginx.url, headers=FORGED, verify=nginx.trust()) as via:
        codes = [via.post("/login", data={"token": "pp_wrong"}).status_code
                 for _ in range(ATTEMPTS + 1)]
        assert codes[0] == 401 and codes[-1] == 429, codes
        login = via.post("/login", data={"token": server.token})
        assert login.status_code == 303 and "; secure" in login.headers["set-cookie"].lower()
        toggled = via.post("/api/v1/pins/18/toggle", headers={
            "Authorization": f"Bearer {server.token}"})
        assert toggled.status_code == 200, toggled.text
    assert history_clients(server)[0] == "127.0.0.3"
    assert "failed login from 127.0.0.3" in server.log()
    assert "198.51.100.9" not in server.log()
    # A fresh address through nginx is not locked out by the other two.
    with client_from("127.0.0.4", nginx.url, verify=nginx.trust()) as other:
        assert other.post("/login", data={"token": "pp_wrong"}).status_code == 401
