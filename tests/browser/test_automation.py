"""The automation page in real headless Chromium, with JavaScript off as well: add a
schedule from the form, see its next run, disable it with its switch; add a rule from its
form, a refused value shown beside its field, and the rule firing."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.support import ServerFactory, log_in

WAIT_MS = 20_000
CONFIG = """
[gpio]
backend = "simulated"

[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 17
id = "porch"
name = "Porch"

[[pins]]
pin = 27
id = "switch"
name = "Wall switch"

[[schedules]]
id = "night"
name = "All off at night"
cron = "0 1 * * *"
group = "all"
action = "off"
"""


@pytest.mark.parametrize("javascript", [True, False])
def test_add_a_schedule_see_its_next_run_and_disable_it(
        make_server: ServerFactory, browser: Any, javascript: bool) -> None:
    server = make_server(CONFIG)
    page = browser.new_page()
    try:
        log_in(page, server)
        if not javascript:  # Chromium's own switch, for this page only
            cdp = browser.new_cdp_session(page)
            cdp.send("Emulation.setScriptExecutionDisabled", {"value": True})
            page.reload()
        page.get_by_role("link", name="Schedules and rules").click()
        expect(page.get_by_role("heading", name="Schedules")).to_be_visible(timeout=WAIT_MS)
        night = page.locator("#schedule-night")
        expect(night.locator(".next")).to_have_text(re.compile(r"next: (today|tomorrow) 01:00"))
        form = page.get_by_role("form", name="Add a schedule")
        form.get_by_label("Id").fill("porch-evening")
        form.get_by_label("Name").fill("Porch at sunset")
        form.get_by_label("Time").fill("sunset-15m")
        form.get_by_label("What").select_option("pin:porch")
        form.get_by_label("Action").select_option("on")
        page.get_by_role("button", name="Add schedule").click()
        row = page.locator("#schedule-porch-evening")
        expect(row.locator(".next")).to_have_text(
            re.compile(r"next: (today|tomorrow) 1[5-9]:\d\d \(sunset-15m\)"), timeout=WAIT_MS)
        expect(row).to_contain_text("porch on")
        switch = row.get_by_role("switch", name="Disable Porch at sunset")
        expect(switch).to_have_attribute("aria-checked", "true")
        switch.click()
        row = page.locator("#schedule-porch-evening")
        expect(row.locator(".next")).to_have_text("next: disabled", timeout=WAIT_MS)
        expect(row.get_by_role("switch", name="Enable Porch at sunset")).to_have_attribute(
            "aria-checked", "false")
        # A bad one is refused with the problem on the page, the form kept.
        form = page.get_by_role("form", name="Add a schedule")
        form.get_by_label("Id").fill("broken")
        form.get_by_label("Time").fill("25:99")
        page.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#automation-error")).to_contain_text("is not a time")
        expect(page.get_by_role("form", name="Add a schedule").get_by_label("Id")).to_have_value(
            "broken")
    finally:
        page.close()
    with server.client() as http:
        made = http.get("/api/v1/schedules/porch-evening").json()
    assert made["enabled"] is False and made["source"] == "api" and made["at"] == "sunset-15m"


def pin_state(server: Any, pin: str) -> bool:
    with server.client() as http:
        pins = {p["id"]: p for p in http.get("/api/v1/pins").json()["pins"]}
    return bool(pins[pin]["state"])


def test_add_a_rule_from_the_form_without_javascript_and_it_fires(
        make_server: ServerFactory, browser: Any) -> None:
    server = make_server(CONFIG)
    page = browser.new_page()
    try:
        log_in(page, server)
        cdp = browser.new_cdp_session(page)
        cdp.send("Emulation.setScriptExecutionDisabled", {"value": True})
        page.goto(f"{server.url}/automation")
        form = page.get_by_role("form", name="Add a rule")
        form.get_by_label("Rule id").fill("porch-switch")
        form.get_by_label("Rule name").fill("Porch from the wall switch")
        form.get_by_label("Trigger").select_option("pin")
        form.get_by_label("Pin", exact=True).select_option("switch")
        form.get_by_label("Turns").select_option("on")
        form.get_by_label("Cooldown").fill("soon")  # refused: not a duration
        then = form.get_by_role("group", name="Then")
        then.get_by_label("Target").select_option("pin:porch")
        then.get_by_label("Action").select_option("on")
        otherwise = form.get_by_role("group", name=re.compile("^Otherwise"))
        otherwise.get_by_label("Target").select_option("pin:porch")
        otherwise.get_by_label("Action").select_option("off")
        form.get_by_role("button", name="Add rule").click()

        # The page again (422), the problem beside its field, every value as typed.
        form = page.get_by_role("form", name="Add a rule")
        cooldown = form.get_by_label("Cooldown")
        expect(cooldown).to_have_attribute("aria-invalid", "true", timeout=WAIT_MS)
        described = cooldown.get_attribute("aria-describedby")
        expect(page.locator(f"#{described}")).to_contain_text("expected a duration")
        expect(cooldown).to_have_value("soon")
        expect(form.get_by_label("Rule id")).to_have_value("porch-switch")
        expect(form.get_by_label("Pin", exact=True)).to_have_value("switch")
        expect(form.get_by_role("group", name=re.compile("^Otherwise")).get_by_label(
            "Action")).to_have_value("off")
        expect(page.locator("#rule-porch-switch")).to_have_count(0)
        with server.client() as http:
            assert http.get("/api/v1/rules/porch-switch").status_code == 404

        cooldown.fill("")
        form.get_by_role("button", name="Add rule").click()
        row = page.locator("#rule-porch-switch")
        expect(row).to_contain_text("Porch from the wall switch", timeout=WAIT_MS)
        expect(row.locator(".does")).to_contain_text("porch on")
        expect(row.locator(".does")).to_contain_text("otherwise porch off")
        assert page.url == f"{server.url}/automation"  # the 303 back to the page
    finally:
        page.close()

    # The rule works: the wall switch on turns the porch on, off turns it off again.
    assert pin_state(server, "porch") is False
    with server.client() as http:
        http.post("/api/v1/pins/switch/on").raise_for_status()
    wait_until(lambda: pin_state(server, "porch"), "the porch on by the rule")
    with server.client() as http:
        http.post("/api/v1/pins/switch/off").raise_for_status()
        wait_until(lambda: not pin_state(server, "porch"), "the porch off by the rule")
        made = http.get("/api/v1/rules/porch-switch").json()
        history = http.get("/api/v1/history", params={"pin": "porch"}).json()["items"]
    assert made["source"] == "api" and made["last_fired"] is not None
    assert made["when"] == {"pin": "switch", "to": "on"}
    actors = {(e["actor"], e["cause"]) for e in history}
    assert ("rule:porch-switch", "rule") in actors


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while not predicate():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


LOOPING = """
[gpio]
backend = "simulated"

[[pins]]
pin = 17
id = "ping"

[[pins]]
pin = 27
id = "pong"

[[rules]]
id = "a"
when = { pin = "ping", to = "on" }
then = [{ pins = ["pong"], action = "on" }]
otherwise = [{ pins = ["pong"], action = "off" }]

[[rules]]
id = "b"
when = { pin = "pong", to = "on" }
then = [{ pins = ["ping"], action = "off" }]
otherwise = [{ pins = ["ping"], action = "on" }]
"""


def test_a_rule_stopped_by_the_loop_protection_shows_on_the_open_page(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(LOOPING)
    log_in(page, server)
    page.goto(f"{server.url}/automation")
    expect(page.locator("table.rules .stopped:visible")).to_have_count(0)
    with server.client() as http:
        # the page's script has its stream open (the only subscriber) before the loop
        wait_until(lambda: http.get("/api/v1/system").json()["subscribers"] >= 1,
                   "the page's event stream")
        http.post("/api/v1/pins/ping/on").raise_for_status()
        stopped = page.locator("table.rules .stopped:visible")
        expect(stopped).to_have_count(1, timeout=WAIT_MS)  # no reload: the rule_stopped event
        expect(stopped).to_contain_text("stopped: loop")
        rule = next(r["id"] for r in http.get("/api/v1/rules").json()["rules"] if r["stopped"])
        expect(page.locator(f"#rule-{rule} .stopped")).to_be_visible()
        http.put(f"/api/v1/rules/{rule}", json={"enabled": True}).raise_for_status()
    expect(page.locator("table.rules .stopped:visible")).to_have_count(0, timeout=WAIT_MS)
