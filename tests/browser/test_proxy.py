"""Behind a real nginx, and a real Caddy, terminating TLS as the README sets them up:
Chromium logs in through it, the page loads whole over https, Toggle works, the cookie is
Secure; and forwarded headers from anyone but the proxy change nothing.

The proxy listens on 127.0.0.1 and ::1; Chromium comes in over ::1, so pinpanel (which only
the proxy reaches, over 127.0.0.1) can tell the browser's address from the proxy's. The
httpx clients choose their own loopback source addresses (127.0.0.2 and up) to be other
clients.
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
from tests.reverse_proxy import Caddy, Nginx, ReverseProxy, spki_hash
from tests.support import ServerProcess

ATTEMPTS = 3
#: A hang guard for the page to show a change, never a timing assertion.
WAIT_MS = 15_000
CONFIG = f"[auth]\nlogin_attempts_per_minute = {ATTEMPTS}\n"
FORGED = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https",
          "X-Forwarded-Host": "evil.example", "Forwarded": "for=198.51.100.9;proto=https"}


@pytest.fixture(scope="module", params=[Nginx, Caddy], ids=["nginx", "caddy"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[tuple[ServerProcess, ReverseProxy]]:
    """pinpanel (default forwarded_allow_ips) behind a proxy running the README's config."""
    kind: type[ReverseProxy] = request.param
    root = tmp_path_factory.mktemp(kind.name)
    server = ServerProcess(root / "data", CONFIG).start()
    proxy = kind.in_front_of(server.port, root / kind.name)
    try:
        proxy.start()
        yield server, proxy
    finally:
        proxy.stop()
        server.kill()


@pytest.fixture(scope="module")
def chromium(stack: tuple[ServerProcess, ReverseProxy]) -> Iterator[Any]:
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


def test_chromium_logs_in_through_the_proxy_and_the_page_is_whole(
        stack: tuple[ServerProcess, ReverseProxy], chromium: Any) -> None:
    server, proxy = stack
    page = chromium.new_page()
    requests: list[str] = []
    failed: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.goto(f"{proxy.url6}/login?token={server.token}")
    page.get_by_role("button", name="Sign in").click()  # the form post CSP must allow
    page.wait_for_url(f"{proxy.url6}/")
    page.wait_for_load_state("networkidle")

    # The page loaded its own styles and scripts, over https, nothing blocked or warned of.
    assert page.evaluate("document.styleSheets[0].cssRules.length") > 10
    assert any(re.search(r"/static/.*\.css", u) for u in requests)
    assert sum(bool(re.search(r"/static/.*\.js", u)) for u in requests) >= 2
    assert requests and all(u.startswith(f"{proxy.url6}/") for u in requests), requests
    assert failed == [] and problems == [], (failed, problems)
    assert not re.search(r'(href|src|action)="http:', page.content())

    cookie = next(c for c in chromium.cookies(proxy.url6) if c["name"] == SESSION_COOKIE)
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # The form posts (CSP form-action) or live.js fetches, and the event stream through
    # the proxy brings the new state back to the row.
    row = page.locator("#pin-18 .state-text")
    expect(row).to_have_text("Off", timeout=WAIT_MS)
    watcher = chromium.new_page()  # another tab: it hears of the change by the event stream
    watcher.goto(f"{proxy.url6}/")
    expect(watcher.locator("#pin-18 .state-text")).to_have_text("Off", timeout=WAIT_MS)
    watcher.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Toggle GPIO 18").click()
    expect(row).to_have_text("On", timeout=WAIT_MS)
    expect(watcher.locator("#pin-18 .state-text")).to_have_text("On", timeout=WAIT_MS)
    assert watcher.evaluate("window.notReloaded === true")  # live, not a reload
    watcher.close()
    with server.client() as http:
        assert http.get("/api/v1/pins/18").json()["state"] is True
    # The change is recorded as the browser's (::1), not the proxy's (127.0.0.1).
    assert history_clients(server)[0] == "::1"
    assert failed == [] and problems == [], (failed, problems)
    page.close()


def test_forwarded_headers_from_anyone_but_the_proxy_change_nothing(
        stack: tuple[ServerProcess, ReverseProxy]) -> None:
    server, proxy = stack
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

    # Through the proxy from 127.0.0.3 with the same forgeries: it replaces them, so the
    # failures are 127.0.0.3's own, and 127.0.0.2's lock-out is not shared.
    with client_from("127.0.0.3", proxy.url, headers=FORGED, verify=proxy.trust()) as via:
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
    # A fresh address through the proxy is not locked out by the other two.
    with client_from("127.0.0.4", proxy.url, verify=proxy.trust()) as other:
        assert other.post("/login", data={"token": "pp_wrong"}).status_code == 401
