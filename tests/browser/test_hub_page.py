"""The hub's page in Chromium over 100 simulated Pis: listed, filtered, commanded, confirmed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pinpanel.local_broker import LocalBroker
from tests.hub.conftest import hub_config, wait_devices
from tests.support import log_in, pinpanel_cmd

PIS = 100


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[LocalBroker]:
    """A mosquitto and ``pinpanel fleet-sim`` with 100 Pis on it (stopped by PID after)."""
    with LocalBroker(tmp_path / "broker") as broker, \
            (tmp_path / "fleet.log").open("wb") as log:
        proc = subprocess.Popen(pinpanel_cmd("fleet-sim", "--devices", str(PIS), "--broker",
                                             broker.address), stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            yield broker
        finally:
            proc.kill()
            proc.wait()


def test_hub_page_with_100_pis_filtered_and_a_command_confirmed(
        page: Any, make_server: Any, fleet: LocalBroker) -> None:
    hub = make_server(hub_config(fleet), name="hub")
    wait_devices(hub, lambda s: len(s) == PIS and all(d["online"] and len(d["pins"]) == 3
                                                      for d in s.values()), timeout=120)
    log_in(page, hub)
    page.goto(f"{hub.url}/hub")
    page.wait_for_selector("body[data-ready=true]")
    summary = page.locator("#summary")
    summary.filter(has_text=f"{PIS} Pis, {PIS} online, 0 offline").wait_for()
    assert "not connected" not in summary.inner_text()
    # Paged: 20 cards drawn of 100, a phone does not draw a thousand.
    assert page.locator("section.dev").count() == 20
    assert page.locator("#page").inner_text() == f"page 1 of 5 ({PIS} Pis)"
    page.click("#next")
    page.locator("section.dev[data-device=sim-0021]").wait_for()

    # Filter by Pi, send one command from the page, see it confirmed with the Pi's seq.
    page.fill("#pi", "sim-0042")
    page.locator("#page").filter(has_text="(1 Pis)").wait_for()
    card = page.locator("section.dev[data-device=sim-0042]")
    link = card.locator("a")
    assert link.get_attribute("rel") == "noopener"
    card.locator("[data-pin=gpio18] button[data-action=on]").click()
    result = card.locator("[data-pin=gpio18] .result")
    result.filter(has_text=re.compile(r"confirmed in \d+ ms")).wait_for(timeout=30_000)
    card.locator("[data-pin=gpio18] .state-on").wait_for()
    seen = wait_devices(hub, lambda s: any(p["id"] == "gpio18" and p.get("state")
                                           for p in s["sim-0042"]["pins"]))
    seq = next(p["seq"] for p in seen["sim-0042"]["pins"] if p["id"] == "gpio18")
    assert f"seq {seq}" in card.locator("[data-pin=gpio18]").inner_text()

    # Filter by state: only the pin that is on, on the one Pi that has it.
    page.fill("#pi", "")
    page.select_option("#state", "on")
    page.locator("#page").filter(has_text="(1 Pis)").wait_for()
    assert page.locator("section.dev [data-pin]").count() == 1

    # A fleet-wide command from the page's form: group all off, one row per Pi.
    page.select_option("#state", "")
    page.select_option("#fleet-target", "all")
    page.select_option("#fleet-action", "off")
    page.click("#fleet button[type=submit]")
    page.locator("#fleet-status").filter(
        has_text=re.compile(rf"^{PIS} confirmed, 0 refused")).wait_for(timeout=60_000)
    assert page.locator("#results tbody tr").count() == PIS
    page.select_option("#state", "on")
    page.locator("#page").filter(has_text="(0 Pis)").wait_for()
