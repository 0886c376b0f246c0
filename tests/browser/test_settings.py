"""The pin settings page in real Chromium, with its script blocked: plain forms only."""

from __future__ import annotations

from typing import Any

from tests.support import ServerFactory, log_in

CONFIG = """\
# my pins (this comment survives the page)
[[pins]]
pin = 17
id = "relay"
active_low = true  # the relay board

[[pins]]
pin = 27
id = "porch"
"""


def test_edit_add_and_a_refused_value_shown_at_its_field(make_server: ServerFactory,
                                                          page: Any) -> None:
    server = make_server(CONFIG)
    page.route("**/static/app.js*", lambda route: route.abort())  # works without JavaScript
    log_in(page, server)
    page.get_by_role("link", name="Pin settings").click()
    page.wait_for_url(f"{server.url}/settings")
    porch = page.get_by_role("form", name="GPIO 27 (porch)")
    porch.get_by_label("name", exact=True).fill("Porch light")
    porch.get_by_role("button", name="Save").click()
    page.get_by_role("status").filter(has_text="Porch light saved").wait_for()
    text = server.config_path.read_text()
    assert 'name = "Porch light"' in text
    assert "# my pins (this comment survives the page)" in text and "# the relay board" in text

    added = page.get_by_role("form", name="New pin")
    added.get_by_label("pin", exact=True).fill("22")
    added.get_by_label("id", exact=True).fill("fan")
    added.get_by_role("button", name="Add pin").click()
    page.get_by_role("form", name="GPIO 22 (fan)").wait_for()

    before = server.config_path.read_text()
    relay = page.get_by_role("form", name="GPIO 17 (relay)")
    relay.get_by_label("pulse_ms", exact=True).fill("-5")
    relay.get_by_role("button", name="Save").click()
    field = page.get_by_role("form", name="GPIO 17 (relay)").get_by_label("pulse_ms",
                                                                          exact=True)
    field.wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    error = page.locator("#" + field.get_attribute("aria-describedby"))
    assert "between 0 and" in error.inner_text()
    assert server.config_path.read_text() == before
    with server.client() as http:
        pins = http.get("/api/v1/pins").json()["pins"]
    assert [(p["id"], p["name"]) for p in pins] == [
        ("relay", "GPIO 17"), ("porch", "Porch light"), ("fan", "GPIO 22")]


def test_add_edit_and_remove_a_group_with_a_refused_pin_at_its_field(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    page.route("**/static/app.js*", lambda route: route.abort())  # works without JavaScript
    log_in(page, server)
    page.goto(f"{server.url}/settings")
    new = page.get_by_role("form", name="New group")
    new.get_by_label("id", exact=True).fill("outside")
    new.get_by_label("pins", exact=True).fill("relay, nosuch")
    new.get_by_role("button", name="Add group").click()
    field = page.get_by_role("form", name="New group").get_by_label("pins", exact=True)
    field.wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    assert "nosuch" in page.locator("#" + field.get_attribute("aria-describedby")).inner_text()
    assert "groups" not in server.config_path.read_text()

    field.fill("relay, 27")
    page.get_by_role("form", name="New group").get_by_label("name", exact=True).fill("Outside")
    page.get_by_role("form", name="New group").get_by_role("button", name="Add group").click()
    page.get_by_role("status").filter(has_text="group outside saved").wait_for()
    with server.client() as http:
        groups = http.get("/api/v1/groups").json()["groups"]
    assert ("outside", "Outside") in [(g["id"], g["name"]) for g in groups]
    assert "# my pins (this comment survives the page)" in server.config_path.read_text()

    edit = page.get_by_role("form", name="Group outside")
    edit.get_by_label("pins", exact=True).fill("porch")
    edit.get_by_role("button", name="Save group").click()
    page.get_by_role("status").filter(has_text="group outside saved").wait_for()
    with server.client() as http:
        groups = http.get("/api/v1/groups").json()["groups"]
    assert [g["id"] for g in groups].count("outside") == 1
    assert 'pins = ["porch"]' in server.config_path.read_text()

    page.get_by_role("button", name="Remove group outside").click()
    page.get_by_role("status").filter(has_text="group outside removed").wait_for()
    with server.client() as http:
        groups = http.get("/api/v1/groups").json()["groups"]
    assert "outside" not in [g["id"] for g in groups]
