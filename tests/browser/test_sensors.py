"""Sensors on the page in real Chromium: values, the server-drawn chart, live updates."""

from __future__ import annotations

import re
from typing import Any

from tests.support import ServerFactory, log_in

CONFIG = """
[[pins]]
pin = 18

[[sensors]]
id = "tank"
name = "Water tank"
kind = "ds18b20"
interval_s = 3600

[[sensors]]
id = "greenhouse"
name = "Greenhouse"
kind = "bme280"
interval_s = 3600
"""


def simulate(server: Any, sensor: str, body: dict[str, Any]) -> None:
    with server.client() as http:
        answer = http.post(f"/api/v1/sensors/{sensor}/simulate", json=body)
    assert answer.status_code == 200, answer.text


def test_the_chart_shows_and_follows_the_readings_live(make_server: ServerFactory,
                                                       page: Any) -> None:
    server = make_server(CONFIG)
    simulate(server, "tank", {"value": 21.0})
    log_in(page, server)
    card = page.locator("#sensor-tank")
    assert card.locator(".reading-value").inner_text() == "21.00"
    assert card.locator(".reading-unit").inner_text() == "°C"
    chart = card.locator("svg.chart")
    assert chart.count() == 1
    assert chart.get_attribute("data-range") == "24h"
    assert card.locator("path.chart-line").get_attribute("d")  # drawn by the server
    page.locator("#live-status[data-state='connected']").wait_for()
    # a new reading arrives over the stream: the value and the chart follow, no reload
    simulate(server, "tank", {"value": 21.5})
    card.locator(".reading-value", has_text="21.50").wait_for()
    page.wait_for_function(
        "() => { const d = document.querySelector('#sensor-tank path.chart-line')"
        ".getAttribute('d'); return (d.match(/[ML]/g) || []).length >= 2; }")
    # an error reading is shown as an error, never a number
    simulate(server, "tank", {"error": "crc"})
    card.locator(".reading-value", has_text="error").wait_for()
    assert card.locator(".sensor-error").is_visible()
    assert "crc" in card.locator(".sensor-error").inner_text()
    simulate(server, "tank", {"value": 22.0})
    card.locator(".reading-value", has_text="22.00").wait_for()
    assert not card.locator(".sensor-error").is_visible()


def test_seven_and_thirty_days_load_on_demand(make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    reading = page.locator("#sensor-greenhouse .reading[data-reading='humidity']")
    reading.get_by_role("link", name="7 d").click()
    reading.locator("svg.chart[data-range='7d']").wait_for()
    assert reading.get_by_role("link", name="7 d").get_attribute("aria-current") == "true"
    reading.get_by_role("link", name="30 d").click()
    reading.locator("svg.chart[data-range='30d']").wait_for()
    assert page.url == server.url + "/"  # swapped in place, the page stayed


def test_without_javascript_the_range_links_open_the_chart_itself(
        make_server: ServerFactory, page: Any) -> None:
    server = make_server(CONFIG)
    log_in(page, server)
    href = page.locator("#sensor-tank .chart-ranges a", has_text="7 d").get_attribute("href")
    assert href is not None and re.search(r"/sensors/tank/temperature/chart\.svg\?range=7d$",
                                          href)
    response = page.request.get(href if href.startswith("http") else server.url + href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    body = response.text()
    assert body.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert len(body) < 16_000  # a few kilobytes


def test_a_phone_width_page_with_sensors_stays_readable(make_server: ServerFactory,
                                                        page: Any) -> None:
    server = make_server(CONFIG)
    page.set_viewport_size({"width": 320, "height": 640})
    log_in(page, server)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    for value in page.locator(".reading-value").all():
        box = value.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320
        font = value.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
        assert font >= 16
    chart = page.locator("#sensor-tank svg.chart").bounding_box()
    assert chart is not None and chart["width"] <= 320 and chart["height"] >= 40
    links = page.locator("#sensor-tank .chart-ranges a").all()
    for link in links:
        box = link.bounding_box()
        assert box is not None and box["height"] >= 24  # a finger can hit it
