"""The 40-pin header's layout: every position, the supplies, and BCM <-> physical pins."""

from __future__ import annotations

from pinpanel.changes import PinView
from pinpanel.sensor_config import SensorConfig
from pinpanel.web import header_diagram as hd


def view(bcm: int, state: bool = False, mode: str = "output") -> PinView:
    return PinView(bcm, f"gpio{bcm}", f"GPIO {bcm}", mode, state, False, 0, None)


def test_header_has_every_gpio_once_and_the_supplies() -> None:
    gpios = [x for x in hd.HEADER if isinstance(x, int)]
    assert len(hd.HEADER) == 40
    assert sorted(gpios) == list(range(28))
    assert [n for n, x in enumerate(hd.HEADER, 1) if x == "gnd"] == [6, 9, 14, 20, 25, 30, 34, 39]
    assert [n for n, x in enumerate(hd.HEADER, 1) if x == "5v"] == [2, 4]
    assert [n for n, x in enumerate(hd.HEADER, 1) if x == "3v3"] == [1, 17]
    # The ones people wire most, checked against the Raspberry Pi documentation.
    assert (hd.position_of(17), hd.position_of(18), hd.position_of(27)) == (11, 12, 13)
    assert (hd.position_of(2), hd.position_of(21), hd.position_of(26)) == (3, 40, 37)


def test_slots_attach_configured_pins_and_place_them() -> None:
    slots = hd.slots([view(18, True), view(27, mode="input")])
    pin12 = slots[11]
    assert (pin12.number, pin12.bcm, pin12.view is not None) == (12, 18, True)
    assert "on" in pin12.css.split() and "hd-output" in pin12.css.split()
    assert slots[12].view is not None and "hd-input" in slots[12].css
    assert slots[0].text == "3V3" and slots[5].css == "hd-gnd" and slots[10].text == "GPIO17"
    # Odd pins on the left column, even on the right, one row per pair, all inside the box.
    assert slots[10].left and not slots[11].left and slots[10].cy == slots[11].cy
    for slot in slots:
        assert slot.label_x >= 0 and slot.label_x + hd.LABEL_W <= hd.WIDTH
        assert 0 < slot.cy < hd.HEIGHT


def test_the_hardware_pwm_pins_are_marked() -> None:
    slots = hd.slots([view(18, mode="pwm"), view(23)])
    marked = sorted(s.bcm for s in slots if s.bcm is not None and "hd-pwm-capable" in s.css)
    assert marked == [12, 13, 18, 19]
    assert [s.number for s in slots if s.pwm_capable] == [12, 32, 33, 35]
    assert "hd-pwm" in slots[11].css.split() and "hd-pwm-capable" not in slots[15].css


def test_a_counter_sensor_marks_the_gpio_it_claims() -> None:
    water = SensorConfig(id="water", kind="counter", name="Water meter in the cellar", pin=6)
    tank = SensorConfig(id="tank", kind="ds18b20")  # no pin of its own: not on the header
    slots = hd.slots([view(18, True)], [water, tank])
    pin31 = slots[hd.position_of(6) - 1]
    assert (pin31.number, pin31.bcm, pin31.view, pin31.counter) == (31, 6, None, water)
    assert "hd-counter" in pin31.css.split() and "hd-pin" not in pin31.css.split()
    assert pin31.counter_label == "Water meter in t\u2026" and len(pin31.counter_label) == 17
    assert [s.number for s in slots if s.counter is not None] == [31]
    assert slots[11].counter is None and "hd-counter" not in slots[11].css
    short = hd.slots([], [SensorConfig(id="gas", kind="counter", pin=5)])
    assert short[hd.position_of(5) - 1].counter_label == "gas"
