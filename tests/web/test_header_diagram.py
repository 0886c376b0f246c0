"""The page's header diagram on the real app: a counter sensor's input is marked as taken."""

from __future__ import annotations

import re

from tests.inprocess import AppFactory

CONFIG = """
[[pins]]
pin = 18
id = "lights"
name = "Garden lights"

[[sensors]]
id = "water"
name = "Water meter"
kind = "counter"
pin = 6
interval_s = 3600

[[sensors]]
id = "soc"
kind = "cpu_temperature"
interval_s = 3600
"""


def slot(page: str, position: int) -> str:
    """The ``<g>`` of one header position, as the page drew it."""
    found = re.search(rf'<g class="hd-slot [^"]*" data-position="{position}".*?</g>', page,
                      re.S)
    assert found is not None, f"no header position {position}"
    return found.group(0)


def test_the_diagram_names_the_counter_on_its_pin_and_guests_see_no_sensor(
        make_app: AppFactory) -> None:
    app = make_app(CONFIG)
    with app.client() as admin:
        page = admin.get("/").text
        made = admin.post("/api/v1/guests", json={"name": "visitor",
                                                  "pins": {"lights": ["switch"]}})
        assert made.status_code == 201, made.text
    counter = slot(page, 31)  # BCM 6
    assert 'class="hd-slot hd-gpio hd-counter"' in counter
    assert 'data-sensor="water"' in counter and "data-pin" not in counter
    assert "aria-hidden" not in counter
    assert "<title>Pin 31: GPIO6, input of the counter sensor Water meter</title>" in counter
    assert ">Water meter</text>" in counter
    assert 'class="hd-key hd-key-counter"' in page
    assert page.count("hd-counter") == 1  # the cpu_temperature sensor has no pin
    assert 'data-pin="18"' in slot(page, 12) and "hd-counter" not in slot(page, 12)
    guest = made.json()["link"].split("token=", 1)[1]
    with app.client(guest) as visitor:
        seen = visitor.get("/")
    assert seen.status_code == 200, seen.text
    assert 'data-pin="18"' in seen.text
    assert "hd-counter" not in seen.text and "Water meter" not in seen.text
    assert 'aria-hidden="true"' in slot(seen.text, 31)
