"""A guest link in real Chromium: the admin makes it on the page (plain form), the guest's
phone opens it, confirms, and sees only its pins with only its buttons; revoked, it stops."""

from __future__ import annotations

from typing import Any

from tests.support import ServerFactory, log_in

CONFIG = """
[[pins]]
pin = 18
id = "lights"
name = "Garden lights"
[[pins]]
pin = 23
id = "garage"
name = "Garage door"
pulse_ms = 300
[[pins]]
pin = 24
name = "Workshop"
"""


def test_a_guest_link_made_on_the_page_shows_the_guest_only_its_pins(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    page.get_by_role("link", name="Guest links and phones").click()
    page.get_by_label("Name").first.fill("plumber")
    row_lights = page.get_by_role("row", name="Garden lights (BCM 18)")
    row_lights.get_by_label("on/off").check()
    page.get_by_role("row", name="Garage door (BCM 23)").get_by_label("pulse").check()
    page.get_by_label("For").select_option("1h")
    page.get_by_role("button", name="Make guest link").click()
    link = page.locator("a.guest-link").get_attribute("href")
    assert link and "/login?token=pp_" in link
    assert page.locator(".qr svg").count() == 1

    page.context.clear_cookies()  # now the guest's phone
    page.goto(link)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url + "/")
    rows = page.locator("tbody tr[data-pin]")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.pin)")) == ["18", "23"]
    assert page.get_by_text("Workshop").count() == 0
    garage = page.locator("#pin-23")
    assert garage.get_by_role("button", name="Toggle Garage door").count() == 0
    garage.get_by_role("button", name="Pulse Garage door for 300 ms").click()  # a plain form
    page.wait_for_url(server.url + "/")
    assert page.get_by_role("link", name="Guest links and phones").count() == 0
    lights = page.locator("#pin-18")
    was = lights.get_attribute("class")
    lights.get_by_role("button", name="Toggle Garden lights").click()
    page.wait_for_function(
        "([row, was]) => document.querySelector(row).className !== was", arg=["#pin-18", was])
    with server.client() as admin:
        history = admin.get("/api/v1/history?pin=18&limit=1").json()["items"]
        assert history[0]["actor"] == "guest:plumber"
        pulsed = admin.get("/api/v1/history?pin=23&limit=5").json()["items"]
        assert any(i["new"] and i["actor"] == "guest:plumber" for i in pulsed)
        assert admin.delete("/api/v1/guests/plumber").status_code == 204
    page.goto(server.url + "/")
    page.wait_for_url(server.url + "/login?next=/")
