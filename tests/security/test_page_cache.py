"""The page is rendered once and served from a cache (web/pages.py): what must still differ.

Each browser session's page carries its own CSRF token and signed-in name, a Bearer client's
page carries none, and a committed change shows on the very next page.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.security.conftest import CSRF_META, Spawn, browser_session, make_tokens
from tests.support import ServerProcess

HTML = {"Accept": "text/html"}
FORM_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
ROW_18 = re.compile(r'<tr id="pin-18"[^>]*class="(on|off)')
DATA_NOW = re.compile(r'data-now="([^"]*)"')


@pytest.fixture(scope="module")
def server(spawn: Spawn) -> ServerProcess:
    return spawn()


def test_each_session_gets_its_own_csrf_token_from_the_cached_page(
        server: ServerProcess) -> None:
    tokens = make_tokens(server, alice="control", bob="control")
    alice, bob = browser_session(server, tokens["alice"]), browser_session(server, tokens["bob"])
    assert alice.csrf != bob.csrf
    with httpx.Client(base_url=server.url) as http:
        for session, name in ((alice, "alice"), (bob, "bob"), (alice, "alice")):
            page = http.get("/", headers={**HTML, **session.header})
            assert page.status_code == 200
            assert CSRF_META.search(page.text).group(1) == session.csrf  # type: ignore[union-attr]
            fields = FORM_CSRF.findall(page.text)
            assert fields and set(fields) == {session.csrf}
            assert f"<span>{name}</span>" in page.text
            assert "\x00" not in page.text
        bearer = http.get("/", headers={"Authorization": f"Bearer {tokens['alice']}"})
        assert bearer.status_code == 200
        assert CSRF_META.search(bearer.text).group(1) == ""  # type: ignore[union-attr]
        assert "Sign out" not in bearer.text and "\x00" not in bearer.text


def test_a_change_shows_on_the_next_page_and_the_render_time_is_fresh(
        server: ServerProcess) -> None:
    with server.client() as http:
        before = http.get("/")
        state = ROW_18.search(before.text).group(1)  # type: ignore[union-attr]
        assert http.post("/api/v1/pins/18/toggle").status_code == 200
        after = http.get("/")
        assert ROW_18.search(after.text).group(1) == ("off" if state == "on" else "on")  # type: ignore[union-attr]
        again = http.get("/")
        stamps = [DATA_NOW.search(p.text).group(1) for p in (before, after, again)]  # type: ignore[union-attr]
        assert stamps == sorted(stamps)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s) for s in stamps)
