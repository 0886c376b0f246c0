"""The live page in real headless Chromium: pages in step, inputs, pulses, reconnects.

Every wait is Playwright's bounded wait for a condition on the page; "without reload" is
proven by a marker set on ``window`` before the change and still there after it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import REPO, ServerFactory, ServerProcess, log_in

WAIT_MS = 20_000
CONFIG = """
[[pins]]
pin = 17
id = "garage"
name = "Garage door"
pulse_ms = 1500
[[pins]]
pin = 18
name = "Lamp"
[[pins]]
pin = 27
id = "button"
name = "Doorbell"
mode = "input"
pull = "up"
"""


def open_live(page: Any, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#live-status")).to_have_text("Connected", timeout=WAIT_MS)
    expect(page.get_by_role("status").filter(has_text="Connected")).to_be_visible()
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_two_pages_stay_in_step_without_reloading(make_server: ServerFactory, page: Any,
                                                  browser: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    other = browser.new_page()
    try:
        open_live(page, server)
        open_live(other, server)
        page.get_by_role("button", name="Toggle Lamp").click()
        for each in (page, other):
            expect(each.locator("#pin-18 .state-text")).to_have_text("On", timeout=WAIT_MS)
            expect(each.locator("#pin-18")).to_have_class("on flash", timeout=WAIT_MS)
            assert each.locator("#pin-18 button.toggle").get_attribute("aria-pressed") == "true"
            assert not_reloaded(each)
        other.get_by_role("button", name="Toggle Lamp").click()  # and back, the other way
        for each in (page, other):
            expect(each.locator("#pin-18 .state-text")).to_have_text("Off", timeout=WAIT_MS)
            assert not_reloaded(each)
        with server.client() as http:
            pins = {p["pin"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
            assert pins[18] is False
            history = http.get("/api/v1/history", params={"pin": "18"}).json()
        assert "form" not in str(history)  # switched by fetch(), not by posting the form
    finally:
        other.close()


def test_a_simulated_button_press_shows_on_the_page(make_server: ServerFactory,
                                                    page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    open_live(page, server)
    state = page.locator("#pin-27 .state-text")
    expect(state).to_have_text("On")  # pulled up: not pressed
    with server.client() as http:
        assert http.post("/api/v1/pins/button/simulate", json={"level": "low"}).is_success
        expect(state).to_have_text("Off", timeout=WAIT_MS)
        assert http.post("/api/v1/pins/button/simulate", json={"level": "high"}).is_success
        expect(state).to_have_text("On", timeout=WAIT_MS)
    assert not_reloaded(page)


def test_buttons_are_disabled_while_a_pulse_runs(make_server: ServerFactory,
                                                 page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    open_live(page, server)
    assert page.locator("#pin-18 button.pulse").count() == 0  # no pulse_ms configured
    pulse = page.get_by_role("button", name="Pulse Garage door for 1500 ms")
    toggle = page.get_by_role("button", name="Toggle Garage door")
    pulse.click()
    expect(page.locator("#pin-17 .state-text")).to_have_text("On", timeout=WAIT_MS)
    expect(toggle).to_be_disabled()
    expect(pulse).to_be_disabled()
    expect(page.locator("#pin-17 .state-text")).to_have_text("Off", timeout=WAIT_MS)
    expect(toggle).to_be_enabled()
    expect(pulse).to_be_enabled()
    with server.client() as http:  # a pulse started elsewhere disables them here too
        assert http.post("/api/v1/pins/garage/pulse", json={"ms": 1500}).is_success
    expect(toggle).to_be_disabled(timeout=WAIT_MS)
    expect(toggle).to_be_enabled(timeout=WAIT_MS)
    assert not_reloaded(page)


STALE_HINT = "Not connected: the states below may be out of date."


def test_the_indicator_shows_a_lost_connection_and_the_page_catches_up(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    open_live(page, server)
    table = page.locator("table.pins")
    expect(table).not_to_have_class(re.compile(r"\bstale\b"))
    expect(table).to_have_accessible_description("")
    assert server.stop() == 0
    expect(page.locator("#live-status")).to_have_text("Reconnecting…", timeout=WAIT_MS)
    assert page.locator("#live-status").get_attribute("data-state") == "reconnecting"
    # The rows may be out of date now: they look it, and say it.
    expect(table).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#live-stale")).to_be_visible()
    expect(table).to_have_accessible_description(STALE_HINT)
    assert float(page.locator("#pin-18").evaluate("r => getComputedStyle(r).opacity")) < 1
    server.start()
    with server.client() as http:
        assert http.post("/api/v1/pins/18/on").is_success  # changed while it reconnects
    expect(page.locator("#live-status")).to_have_text("Connected", timeout=WAIT_MS)
    expect(page.locator("#pin-18 .state-text")).to_have_text("On", timeout=WAIT_MS)
    expect(table).not_to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#live-stale")).to_be_hidden()
    expect(table).to_have_accessible_description("")
    # The changes missed while away (a fresh snapshot after the restart) are filled in
    # from the audit log: who switched it, and the bar.
    expect(page.locator("#pin-18 .last-change")).to_have_text(
        re.compile(rf"^ since \d\d:\d\d, by tests-{server.port}$"), timeout=WAIT_MS)
    expect(page.locator("#pin-18 rect.timeline-on")).to_have_count(1)
    assert not_reloaded(page)


def drawn_row(page: Any, pin: int) -> dict[str, Any]:
    """What a row's state cell shows: the since line, the bar's rects and its label."""
    return dict(page.locator(f"#pin-{pin} td.state").evaluate("""(cell) => ({
        since: cell.querySelector(".last-change")?.textContent ?? null,
        label: cell.querySelector("svg.timeline").getAttribute("aria-label"),
        title: cell.querySelector("svg.timeline title").textContent,
        rects: [...cell.querySelectorAll("rect.timeline-on, rect.timeline-unknown")].map(
            (r) => [r.getAttribute("class"), Number(r.getAttribute("x")),
                    Number(r.getAttribute("width"))]),
    })"""))


def test_the_since_line_and_the_timeline_follow_every_change(
        make_server: ServerFactory, page: Any, browser: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The server's zone is not the browser's (UTC): the page shows the server's times.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    server = make_server(CONFIG)
    script = server.create_token("night-script", "control")
    log_in(page, server)
    open_live(page, server)
    since = page.locator("#pin-18 .last-change")
    expect(since).to_have_text(re.compile(r"by system \(startup\)$"))
    before = drawn_row(page, 18)
    assert not [r for r in before["rects"] if r[0] == "timeline-on"]
    # Switched on this page...
    page.get_by_role("button", name="Toggle Lamp").click()
    expect(since).to_have_text(re.compile(rf"^ since \d\d:\d\d, by tests-{server.port}$"),
                               timeout=WAIT_MS)
    assert since.get_attribute("data-state") == "on"
    at = since.locator("time").get_attribute("datetime")
    local = datetime.fromisoformat(at.replace("Z", "+00:00")) + timedelta(hours=5, minutes=30)
    expect(since.locator("time")).to_have_text(local.strftime("%H:%M"))
    bar = page.locator("#pin-18 svg.timeline")
    expect(bar.locator("rect.timeline-on")).to_have_count(1)
    expect(bar).to_have_attribute("aria-label", re.compile(r"^Lamp: 2 changes in the last 24 "
                                                           r"hours; on for "))
    # ...and from anywhere else: a script's token, and a pulse ended by the board itself.
    with server.client(token=script) as http:
        assert http.post("/api/v1/pins/18/off").is_success
    expect(since).to_have_text(re.compile(r"^ since \d\d:\d\d, by night-script$"),
                               timeout=WAIT_MS)
    expect(bar).to_have_attribute("aria-label", re.compile(r"^Lamp: 3 changes"))
    with server.client(token=script) as http:
        assert http.post("/api/v1/pins/garage/pulse", json={"ms": 1500}).is_success
    garage = page.locator("#pin-17 .last-change")
    expect(garage).to_have_attribute("data-state", "on", timeout=WAIT_MS)
    expect(garage).to_have_attribute("data-state", "off", timeout=WAIT_MS)
    expect(page.locator("#pin-17 rect.timeline-on")).to_have_count(1)
    assert not_reloaded(page)
    # What the script drew is what the server draws: the same page, freshly loaded (both
    # pins are off, so their bars no longer grow with the clock).
    live = {pin: drawn_row(page, pin) for pin in (17, 18)}
    fresh = browser.new_page()
    try:
        fresh.route("**/static/*.js*", lambda route: route.abort())  # the server's drawing
        fresh.goto(server.url + "/")
        for pin in (17, 18):
            drawn = drawn_row(fresh, pin)
            assert (drawn["since"], drawn["label"], drawn["title"]) == (
                live[pin]["since"], live[pin]["label"], live[pin]["title"]), pin
            assert len(drawn["rects"]) == len(live[pin]["rects"]), pin
            for (kind, x, width), (live_kind, live_x, live_width) in zip(
                    drawn["rects"], live[pin]["rects"], strict=True):
                # A minute may have passed between the two drawings: one unit of 1440.
                assert kind == live_kind and abs(x - live_x) <= 1.01, pin
                assert abs(width - live_width) <= 1.01, pin
    finally:
        fresh.close()


def test_without_the_script_the_form_post_still_works(make_server: ServerFactory,
                                                      page: Any) -> None:
    server = make_server(CONFIG)
    # Both of the page's scripts: app.js would install the service worker, which would then
    # hand live.js over from its cache, past this route.
    page.route("**/static/*.js*", lambda route: route.abort())  # with or without ?v=
    log_in(page, server)
    assert page.locator("#live-status").is_hidden()  # no live updates, so no indicator
    assert page.locator("#pin-17 button.pulse").is_hidden()  # pulse needs the script
    with page.expect_navigation():  # a real form post and redirect, not fetch()
        page.get_by_role("button", name="Toggle Lamp").click()
    expect(page.locator("#pin-18 .state-text")).to_have_text("On", timeout=WAIT_MS)


def test_the_live_page_with_a_pulse_button_fits_a_phone(make_server: ServerFactory,
                                                        page: Any) -> None:
    server = make_server(CONFIG)
    page.set_viewport_size({"width": 320, "height": 640})
    log_in(page, server)
    open_live(page, server)
    assert page.get_by_role("button", name="Pulse Garage door for 1500 ms").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def readme_javascript() -> str:
    """The JavaScript example of the README's "Live events" section."""
    section = (REPO / "README.md").read_text().split("## Live events", 1)[1]
    return section.split("```js\n", 1)[1].split("```", 1)[0]


def test_the_readmes_javascript_example_works(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    lines: list[str] = []
    page.on("console", lambda message: lines.append(message.text))
    open_live(page, server)  # the page's own stream first
    page.evaluate("() => {\n" + readme_javascript() + "\n}")
    with server.client() as http:
        for _ in range(400):  # up to 20 s for the example's stream to be open too
            if http.get("/api/v1/system").json()["subscribers"] == 2:
                break
            page.wait_for_timeout(50)
        assert http.post("/api/v1/pins/18/on").is_success
    expected = f"Lamp on (api, tests-{server.port})"
    for _ in range(400):  # up to 20 s
        if expected in lines:
            break
        page.wait_for_timeout(50)
    assert expected in lines, lines


def test_the_bars_move_on_with_the_clock(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    page.clock.install()  # the page's timers and Date, moved by hand below
    log_in(page, server)
    open_live(page, server)
    bar = page.locator("#pin-27 svg.timeline")  # the input, on (pulled up) since start-up
    # on since start-up, moments ago: "under 1 s" or a few seconds, however fast the start
    expect(bar).to_have_attribute("aria-label",
                                  re.compile(r"on for (under 1|\d+) s in total$"))
    on = bar.locator("rect.timeline-on")
    expect(on).to_have_count(1)
    assert float(on.get_attribute("width") or 0) < 10  # a few seconds, drawn 4 units wide
    page.clock.fast_forward("02:00:00")  # the minute's redraw runs, two hours on
    expect(bar).to_have_attribute("aria-label", re.compile(r"on for 2 h( \d+ min)? in total$"))
    assert 119 < float(on.get_attribute("width") or 0) < 130  # 120 units = 2 hours
    assert not_reloaded(page)
