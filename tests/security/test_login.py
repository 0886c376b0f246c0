"""Browser login: the link flow, the cookie's attributes, CSRF, logout, redirects, and the
rate limit on failed logins (and bad tokens)."""

from __future__ import annotations

import httpx
import pytest

from pinpanel.web.security import SESSION_COOKIE
from tests.security.conftest import CSRF_META, Spawn, make_tokens, pin_snapshot
from tests.support import ServerProcess

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def server(spawn: Spawn) -> ServerProcess:
    return spawn("[auth]\nlogin_attempts_per_minute = 3\nsession_hours = 2\n")


@pytest.fixture(scope="module")
def token(server: ServerProcess) -> str:
    return make_tokens(server, owner="control")["owner"]


def test_a_page_without_a_session_redirects_to_login(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as browser:
        for path, back in (("/", "/"), ("/docs", "/docs")):
            response = browser.get(path, headers=HTML)
            assert response.status_code == 303
            assert response.headers["location"] == f"/login?next={back}"
        login = browser.get("/login?next=/docs", headers=HTML)
        assert login.status_code == 200 and 'type="password"' in login.text
        assert login.headers["cache-control"] == "no-store"
        # a script (no text/html) gets a 401 problem instead of a page
        assert browser.get("/").status_code == 401
        # what the login page reflects is escaped
        sneaky = browser.get("/login", params={"token": '"><script>alert(1)</script>',
                                               "next": '/"><b>x'})
        assert "<script>alert" not in sneaky.text and "&lt;script&gt;" in sneaky.text
        assert '"><b>' not in sneaky.text


def test_login_sets_a_strict_httponly_cookie_and_csrf_guards_every_form(
        server: ServerProcess, token: str) -> None:
    with httpx.Client(base_url=server.url) as browser:
        confirm = browser.get(f"/login?token={token}&next=/docs", headers=HTML)
        assert f'value="{token}"' in confirm.text and "set-cookie" not in confirm.headers
        done = browser.post("/login", data={"token": token, "next": "/docs"})
        assert (done.status_code, done.headers["location"]) == (303, "/docs")
        cookie = done.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        assert "secure" not in attributes  # plain HTTP here; tests/security/test_https.py
        assert "max-age=7200" in cookie.lower()  # session_hours = 2

        page = browser.get("/", headers=HTML)
        assert page.status_code == 200 and "Sign out" in page.text and "owner" in page.text
        csrf = CSRF_META.search(page.text).group(1)  # type: ignore[union-attr]
        forms = page.text.count("<form ")
        assert forms >= 4 and page.text.count(f'name="csrf_token" value="{csrf}"') >= forms
        before = pin_snapshot(server)
        assert browser.post("/toggle?pin=18").status_code == 403
        assert browser.post("/toggle?pin=18", data={"csrf_token": "x" * 64}).status_code == 403
        assert browser.post("/api/v1/pins/18/on", headers={"X-CSRF-Token": "nope"}
                            ).status_code == 403
        assert pin_snapshot(server) == before
        assert browser.post("/toggle?pin=18", data={"csrf_token": csrf}).status_code == 303
        assert browser.post("/api/v1/pins/18/off", headers={"X-CSRF-Token": csrf}
                            ).status_code == 200

        assert browser.post("/logout").status_code == 403  # logout needs the CSRF token too
        out = browser.post("/logout", data={"csrf_token": csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert 'max-age=0' in out.headers["set-cookie"].lower()
        # the old cookie is dead server-side, even if a browser kept it
        stale = {"Cookie": f"{SESSION_COOKIE}={done.cookies[SESSION_COOKIE]}"}
        with httpx.Client(base_url=server.url, headers=stale) as kept:
            assert kept.get("/api/v1/pins").status_code == 401
            assert kept.get("/", headers=HTML).status_code == 303


def test_next_never_leads_off_the_server(server: ServerProcess, token: str) -> None:
    with httpx.Client(base_url=server.url) as browser:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            done = browser.post("/login", data={"token": token, "next": target})
            assert (done.status_code, done.headers["location"]) == (303, "/")
            browser.cookies.clear()  # logged in: a second login would need the CSRF token


def test_failed_logins_and_bad_tokens_are_rate_limited_but_valid_ones_never(
        spawn: Spawn) -> None:
    server = spawn("[auth]\nlogin_attempts_per_minute = 3\n")
    good = server.token
    with httpx.Client(base_url=server.url) as client:
        for _ in range(2):
            assert client.post("/login", data={"token": "pp_wrong"}).status_code == 401
        assert client.get("/api/v1/pins", headers={"Authorization": "Bearer pp_wrong"}
                          ).status_code == 429  # the third failure in a minute
        limited = client.post("/login", data={"token": "pp_wrong"})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "Too many failed attempts" in limited.text
        api = client.get("/api/v1/pins", headers={"Authorization": "Bearer pp_wrong"})
        assert api.status_code == 429 and int(api.headers["retry-after"]) >= 1
        assert api.json()["status"] == 429
        # from the same address, in the same minute, valid credentials still get in
        assert client.get("/api/v1/pins", headers={"Authorization": f"Bearer {good}"}
                          ).status_code == 200
        assert client.post("/login", data={"token": good}).status_code == 303
        assert client.get("/api/v1/pins").status_code == 200  # with the session cookie
        assert client.get("/healthz").status_code == 200
    assert server.log().count("too many failed") == 1  # the crossing is logged, once
