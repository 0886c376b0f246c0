"""The page in real headless Chromium: load, click Toggle, see the new state."""

from __future__ import annotations

from typing import Any

from tests.support import JSON, ServerFactory, log_in


def test_click_toggle_shows_the_new_state(make_server: ServerFactory, page: Any) -> None:
    server = make_server()
    log_in(page, server)  # the real flow: login link, Sign in, back to /
    row = page.locator("#pin-18")
    assert row.locator(".state-text").inner_text() == "Off"
    assert page.locator("text=Simulated board").is_visible()
    row.get_by_role("button", name="Toggle GPIO 18").click()
    page.wait_for_url(server.url + "/")
    page.locator("#pin-18 .state-text", has_text="On").wait_for()
    assert page.locator("#pin-18 button").get_attribute("aria-pressed") == "true"
    with server.client() as http:
        assert http.get("/api/list", headers=JSON).json()["18"] is True


def test_page_fits_a_phone_and_every_button_has_a_name(make_server: ServerFactory,
                                                       page: Any) -> None:
    server = make_server()
    page.set_viewport_size({"width": 320, "height": 640})
    log_in(page, server)  # the real flow: login link, Sign in, back to /
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 320
    for button in page.get_by_role("button").all():
        assert button.get_attribute("aria-label") or button.inner_text().strip()
    assert page.locator("tbody tr").count() == 3
