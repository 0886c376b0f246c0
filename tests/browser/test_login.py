"""Logging in and out in real Chromium, and what the browser itself enforces: the cookie's
attributes, CSRF on the page's forms and fetches, and a cross-site form post refused."""

from __future__ import annotations

from typing import Any

from tests.support import ServerFactory, log_in


def test_login_by_pasting_a_token_then_sign_out(make_server: ServerFactory, page: Any) -> None:
    server = make_server()
    page.goto(server.url + "/docs")
    page.wait_for_url(server.url + "/login?next=/docs")
    page.get_by_label("Token").fill("pp_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="not valid").wait_for()
    page.get_by_label("Token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/docs")
    cookie = next(c for c in page.context.cookies(server.url) if c["name"] == "pinpanel_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    assert page.evaluate("document.cookie").find("pinpanel_session") == -1  # HttpOnly
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/login")
    page.goto(server.url + "/")
    page.wait_for_url(server.url + "/login?next=/")


def test_a_login_link_leaks_its_token_to_no_request_the_page_makes(
        make_server: ServerFactory, page: Any) -> None:
    """The link's token stays out of every Referer (a proxy's access log would keep it)."""
    server = make_server()
    assert server.token is not None
    referers: list[str] = []
    page.on("request", lambda request: referers.append(request.headers.get("referer", "")))
    page.goto(f"{server.url}/login?token={server.token}")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    page.get_by_role("button", name="Toggle").first.wait_for()
    assert len(referers) > 3  # the login page's and the pin page's assets, the post
    assert not [r for r in referers if server.token in r]
    assert any(c["name"] == "pinpanel_session" for c in page.context.cookies(server.url))


def test_the_pages_fetch_sends_the_csrf_header(make_server: ServerFactory, page: Any) -> None:
    server = make_server()
    log_in(page, server)
    script = """async (withToken) => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const headers = withToken ? {'X-CSRF-Token': token} : {};
        const response = await fetch('/api/v1/pins/23/on', {method: 'POST', headers});
        return response.status;
    }"""
    assert page.evaluate(script, False) == 403
    assert page.evaluate(script, True) == 200
    with server.client() as http:
        assert http.get("/api/v1/pins/23").json()["state"] is True


def test_a_cross_site_form_post_is_refused(make_server: ServerFactory, page: Any) -> None:
    server = make_server()
    log_in(page, server)
    # A page on another site with a form aimed at the pins (served by Playwright itself).
    target = server.url + "/toggle?pin=18"
    evil = (f'<form method="post" action="{target}"><button>Win a prize</button></form>')
    page.route("http://evil.example/**", lambda route: route.fulfill(
        body=evil, content_type="text/html"))
    page.goto("http://evil.example/")
    with page.expect_navigation():
        page.get_by_role("button", name="Win a prize").click()
    assert "cross-site request refused" in page.content()
    with server.client() as http:
        assert http.get("/api/v1/pins/18").json()["state"] is False
