"""The page as a phone app in real Chromium: installable, narrow, accessible, and the header
diagram switching pins."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import JSON, ServerFactory, ServerProcess, log_in

CONFIG = """
[[pins]]
pin = 17
id = "garage"
name = "Garage door"
[[pins]]
pin = 18
name = "Porch light"
[[pins]]
pin = 23
name = "A rather long pump name"
[[pins]]
pin = 27
id = "doorbell"
name = "Doorbell"
mode = "input"
"""
PINS = (17, 18, 23, 27)


def api_state(server: ServerProcess, pin: int) -> bool:
    with server.client() as http:
        state: bool = http.get(f"/api/v1/pins/{pin}", headers=JSON).json()["state"]
    return state


def test_manifest_and_service_worker_register(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    # The page links by path; the element's href property is the resolved URL.
    href = page.evaluate('document.querySelector(\'link[rel="manifest"]\').href')
    manifest = page.request.get(href)
    assert manifest.ok
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    data = json.loads(manifest.text())
    assert (data["start_url"], data["scope"], data["display"]) == ("/", "/", "standalone")
    sizes = {icon["sizes"] for icon in data["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in data["icons"]:
        assert page.request.get(server.url + icon["src"]).ok, icon["src"]
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == server.url + "/"
    page.reload()
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    # The shell is cached; API answers (fetched under the worker's control) never are.
    cached = page.evaluate("""async () => {
        await fetch("/api/v1/pins", {headers: {"Accept": "application/json"}});
        await fetch("/static/pinpanel.css");
        const urls = [];
        for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            for (const request of await cache.keys()) urls.push(new URL(request.url).pathname);
        }
        return urls;
    }""")
    assert "/static/pinpanel.css" in cached and "/static/app.js" in cached
    assert not [url for url in cached if not url.startswith("/static/")], cached


def test_every_pin_fits_at_320_px(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    page.set_viewport_size({"width": 320, "height": 640})
    log_in(page, server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    for pin in PINS:
        for selector in (f"#pin-{pin}", f'.hd-slot[data-pin="{pin}"]'):
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["x"] + box["width"] <= 320, (selector, box)
    # The diagram's labels stay readable: no smaller than 10 CSS pixels on screen.
    size = page.evaluate("""() => {
        const label = document.querySelector('.hd-slot[data-pin="18"] .hd-name');
        const svg = document.querySelector("svg.hd");
        const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
        return parseFloat(getComputedStyle(label).fontSize) * scale;
    }""")
    assert size >= 10


def test_clicking_a_pin_on_the_header_diagram_toggles_it(make_server: ServerFactory,
                                                          page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    slot = page.locator('.hd-slot[data-pin="18"]')
    assert slot.get_attribute("data-position") == "12"  # BCM 18 is physical pin 12
    button = slot.get_by_role("button")
    assert button.get_attribute("aria-pressed") == "false"
    button.click()
    page.locator('.hd-slot[data-pin="18"].on').wait_for()
    assert button.get_attribute("aria-pressed") == "true"
    assert slot.locator(".hd-state").inner_text() == "On"
    assert api_state(server, 18) is True
    assert page.url == server.url + "/"  # switched by fetch, no page load
    # The table follows through the event stream, and the diagram follows the table's
    # changes: a switch made elsewhere shows up on the diagram too.
    page.locator("#pin-18.on").wait_for()
    with server.client() as http:
        http.post("/api/v1/pins/18/off")
    page.locator('.hd-slot[data-pin="18"].off').wait_for()
    # Inputs are drawn but are not buttons; power and ground are drawn as such.
    assert page.locator('.hd-slot[data-pin="27"] button').count() == 0
    assert page.locator(".hd-gnd").count() == 8
    assert page.locator(".hd-5v").count() == 2 and page.locator(".hd-3v3").count() == 2


def test_header_diagram_works_without_javascript(make_server: ServerFactory,
                                                 page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    page.route(re.compile(r".*\.js(\?.*)?$"), lambda route: route.abort())
    page.reload()
    page.locator('.hd-slot[data-pin="17"]').get_by_role("button").click()
    page.wait_for_url(server.url + "/")
    page.locator('.hd-slot[data-pin="17"].on').wait_for()
    assert api_state(server, 17) is True


def test_keyboard_and_accessible_names(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    buttons = page.get_by_role("button")
    assert buttons.count() >= 6  # three Toggle buttons in the table, three on the diagram
    assert page.get_by_role("button", name=re.compile(r"\S")).count() == buttons.count()
    for button in buttons.all():
        if "toggle" in (button.get_attribute("class") or "") or \
                "hd-button" in (button.get_attribute("class") or ""):
            assert button.get_attribute("aria-pressed") in ("true", "false")
    diagram = page.get_by_role("button", name="Garage door Off (header pin 11)")
    diagram.focus()
    page.keyboard.press("Enter")
    page.locator('.hd-slot[data-pin="17"].on').wait_for()
    assert api_state(server, 17) is True
    table = page.get_by_role("button", name="Toggle Garage door")
    table.focus()
    page.keyboard.press("Space")
    page.locator("#pin-17.off").wait_for()


def test_dark_mode_follows_the_system(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="light")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert dark != light
    red, green, blue = (int(x) for x in re.findall(r"\d+", dark)[:3])
    assert red + green + blue < 150
