"""The automation page in real headless Chromium, with JavaScript off as well: add a
schedule from the form, see its next run, disable it with its switch."""

from __future__ import annotations

import re
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
        page.get_by_label("Id").fill("porch-evening")
        page.get_by_label("Name").fill("Porch at sunset")
        page.get_by_label("Time").fill("sunset-15m")
        page.get_by_label("What").select_option("pin:porch")
        page.get_by_label("Action").select_option("on")
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
        page.get_by_label("Id").fill("broken")
        page.get_by_label("Time").fill("25:99")
        page.get_by_role("button", name="Add schedule").click()
        expect(page.locator("#automation-error")).to_contain_text("is not a time")
        expect(page.get_by_label("Id")).to_have_value("broken")
    finally:
        page.close()
    with server.client() as http:
        made = http.get("/api/v1/schedules/porch-evening").json()
    assert made["enabled"] is False and made["source"] == "api" and made["at"] == "sunset-15m"
