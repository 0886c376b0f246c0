"""pwm and servo sliders in real headless Chromium: dragging sets the level, a second page
follows, and the plain form works without JavaScript."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.support import ServerFactory, ServerProcess, log_in

WAIT_MS = 20_000
CONFIG = """
[[pins]]
pin = 18
id = "lamp"
name = "Lamp"
mode = "pwm"
[[pins]]
pin = 12
id = "blind"
name = "Blind"
mode = "servo"
min_angle = 0
max_angle = 180
"""


def pin(server: ServerProcess, ref: str) -> dict[str, Any]:
    with server.client() as http:
        answer: dict[str, Any] = http.get(f"/api/v1/pins/{ref}").json()
        return answer


def history_causes(server: ServerProcess, ref: str) -> list[str]:
    with server.client() as http:
        items = http.get("/api/v1/history", params={"pin": ref}).json()["items"]
        return [row["cause"] for row in items]


def open_live(page: Any, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#live-status")).to_have_text("Connected", timeout=WAIT_MS)


def test_dragging_the_slider_sets_the_level_and_a_second_page_follows(
        make_server: ServerFactory, page: Any, browser: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    other = browser.new_page()
    try:
        open_live(page, server)
        open_live(other, server)
        slider = page.get_by_role("slider", name="Level")
        box = slider.bounding_box()
        assert box is not None
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 2, y)
        page.mouse.down()
        for step in range(1, 11):  # a drag across 60 % of the track, in small moves
            page.mouse.move(box["x"] + box["width"] * 0.06 * step, y)
        page.mouse.up()
        expect(page.locator("#pin-18 .state-text")).to_have_text("On", timeout=WAIT_MS)
        level = float(slider.input_value()) / 100
        assert 0.4 < level < 0.8
        expect(other.locator("#value-18")).to_have_value(slider.input_value(),
                                                          timeout=WAIT_MS)
        expect(other.locator("#pin-18 output")).to_have_text(f"{slider.input_value()}%",
                                                              timeout=WAIT_MS)
        page.wait_for_function(
            "v => fetch('/api/v1/pins/18', {credentials: 'same-origin'})"
            ".then(r => r.json()).then(p => Math.abs(p.level * 100 - v) < 0.01)",
            arg=float(slider.input_value()), timeout=WAIT_MS)
        assert "form" not in history_causes(server, "lamp")  # sent by fetch while dragging
        # a change from elsewhere moves both sliders
        with server.client() as http:
            http.put("/api/v1/pins/blind", json={"angle": 135})
            http.put("/api/v1/pins/lamp", json={"level": 0.25})
        for each in (page, other):
            expect(each.locator("#value-18")).to_have_value("25", timeout=WAIT_MS)
            expect(each.locator("#value-12")).to_have_value("135", timeout=WAIT_MS)
            expect(each.locator("#pin-12 output")).to_have_text("135°", timeout=WAIT_MS)
        other.get_by_role("button", name="Detach").click()
        expect(page.locator("#pin-12 output")).to_have_text("detached", timeout=WAIT_MS)
        expect(page.locator("#pin-12 .state-text")).to_have_text("Off", timeout=WAIT_MS)
        assert pin(server, "blind")["angle"] is None
    finally:
        other.close()


def test_the_slider_form_works_without_javascript(make_server: ServerFactory,
                                                  page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    # No script at all: the service worker (which would serve the scripts from its cache,
    # past the route below) goes first, and app.js that registers it again is blocked.
    page.evaluate("navigator.serviceWorker.getRegistrations()"
                  ".then(rs => Promise.all(rs.map(r => r.unregister())))")
    page.route(re.compile(r".*\.js(\?.*)?$"), lambda route: route.abort())
    page.reload()
    assert page.evaluate("navigator.serviceWorker.controller") is None
    page.locator("#value-18").fill("40")
    page.locator("#pin-18").get_by_role("button", name="Set").click()
    page.wait_for_url(server.url + "/")
    expect(page.locator("#value-18")).to_have_value("40")
    expect(page.locator("#pin-18 output")).to_have_text("40%")
    assert pin(server, "lamp")["level"] == 0.4
    page.locator("#value-12").fill("30")
    page.locator("#pin-12").get_by_role("button", name="Set").click()
    page.wait_for_url(server.url + "/")
    assert pin(server, "blind")["angle"] == 30.0
    page.locator("#pin-12").get_by_role("button", name="Detach").click()
    page.wait_for_url(server.url + "/")
    expect(page.locator("#pin-12 output")).to_have_text("detached")
    assert pin(server, "blind")["angle"] is None
    assert history_causes(server, "blind")[:2] == ["form", "form"]
    assert history_causes(server, "lamp")[0] == "form"
    # the Toggle of a pwm pin is its brightness memory: off, then back to 40 %
    page.get_by_role("button", name="Toggle Lamp").click()
    page.wait_for_url(server.url + "/")
    assert pin(server, "lamp")["level"] == 0.0
    page.get_by_role("button", name="Toggle Lamp").click()
    page.wait_for_url(server.url + "/")
    assert pin(server, "lamp")["level"] == 0.4
