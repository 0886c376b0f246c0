"""pwm pins and servos over MQTT: a real pinpanel process and a real mosquitto.

Home Assistant sees a pwm pin as a light with brightness (or a fan with a percentage) and
a servo as a number (or a valve or cover with a position); scripts use
``<base>/<pin>/level`` and ``/angle`` and their ``set`` topics. Every value carries the seq
the HTTP API and the history carry.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
import pytest
from tests.mqtt.conftest import (
    BASE,
    entity,
    history_rows,
    mosquitto_pub,
    mqtt_config,
    probe,
    render,
    wait_online,
)
from tests.support import ServerProcess

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

PINS = """
[[pins]]
pin = 18
id = "strip"
name = "Strip"
mode = "pwm"

[[pins]]
pin = 19
id = "fan"
name = "Fan"
mode = "pwm"
ha_type = "fan"

[[pins]]
pin = 12
id = "flap"
name = "Flap"
mode = "servo"
min_angle = 0
max_angle = 180

[[pins]]
pin = 13
id = "vent"
name = "Vent"
mode = "servo"
ha_type = "valve"

[[pins]]
pin = 16
id = "blind"
name = "Blind"
mode = "servo"
min_angle = 0
max_angle = 90
ha_type = "cover"
"""


def command(template: str, **values: Any) -> float:
    """Render a command template as Home Assistant does (value: the number it sends)."""
    return float(jinja2.Environment(autoescape=True).from_string(template).render(**values))


def pin_json(server: ServerProcess, pin: str) -> dict[str, Any]:
    with server.client() as http:
        answer: dict[str, Any] = http.get(f"/api/v1/pins/{pin}").json()
        return answer


async def test_discovery_makes_a_light_a_fan_a_number_a_valve_and_a_cover(
        make_server: Any, mosquitto: LocalBroker) -> None:
    make_server(mqtt_config(mosquitto, PINS))
    await wait_online(mosquitto)
    found: dict[str, dict[str, Any]] = {}
    async with probe(mosquitto, "homeassistant/+/pinpanel_t1/+/config") as watch:
        for platform, pin in (("light", "strip"), ("fan", "fan"), ("number", "flap"),
                              ("valve", "vent"), ("cover", "blind")):
            found[pin] = (await watch.wait_for(entity(platform, pin), retain=True)).json()
    for pin, data in found.items():
        assert data["unique_id"] == f"pinpanel_t1_{pin}"
        assert data["json_attributes_topic"] == f"{BASE}/{pin}/attributes"
        assert data["availability"][0]["topic"] == f"{BASE}/status" and data["qos"] == 1
        assert data["device"]["identifiers"] == ["pinpanel_t1"]
    at_40 = json.dumps({"state": True, "level": 0.4, "seq": 3}).encode()
    light = found["strip"]
    assert light["command_topic"] == f"{BASE}/strip/set"
    assert render(light["state_value_template"], at_40) == "ON"
    assert light["brightness_command_topic"] == f"{BASE}/strip/level/set"
    assert light["brightness_scale"] == 100 and light["on_command_type"] == "brightness"
    assert render(light["brightness_value_template"], at_40) == "40"
    assert command(light["brightness_command_template"], value=40) == 0.4
    fan = found["fan"]
    assert fan["percentage_command_topic"] == f"{BASE}/fan/level/set"
    assert render(fan["percentage_value_template"], at_40) == "40"
    assert command(fan["percentage_command_template"], value=75) == 0.75
    number = found["flap"]
    assert number["command_topic"] == f"{BASE}/flap/angle/set"
    assert (number["min"], number["max"], number["unit_of_measurement"]) == (0, 180, "°")
    at_30 = json.dumps({"state": True, "angle": 30.0}).encode()
    detached = json.dumps({"state": False, "angle": None}).encode()
    assert render(number["value_template"], at_30) == "30.0"
    assert render(number["value_template"], detached) == "None"  # HA's reset: unknown
    valve = found["vent"]  # -90..90: position 0 is -90
    assert valve["command_topic"] == f"{BASE}/vent/angle/set" and valve["reports_position"]
    assert render(valve["value_template"], at_30) == "67"
    assert command(valve["command_template"], value=50) == 0.0
    cover = found["blind"]  # 0..90
    assert cover["set_position_topic"] == f"{BASE}/blind/angle/set"
    assert render(cover["position_template"], at_30) == "33"
    assert command(cover["set_position_template"], position=100) == 90.0


async def test_levels_and_angles_by_mqtt_agree_with_http_and_the_history(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto, PINS))
    await wait_online(mosquitto)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        await watch.wait_for(f"{BASE}/strip/level", "0.0", retain=True)
        await watch.wait_for(f"{BASE}/flap/angle", "null", retain=True)

        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/strip/level/set", "0.4")
        attributes = await watch.wait_for(f"{BASE}/strip/attributes", since=mark,
                                          where=lambda m: m.json()["level"] == 0.4)
        level = await watch.wait_for(f"{BASE}/strip/level", "0.4", since=mark)
        await watch.wait_for(f"{BASE}/strip/state", "ON", since=mark)
        assert watch.received.index(attributes) < watch.received.index(level)
        seq = attributes.json()["seq"]
        http = pin_json(server, "strip")
        assert (http["level"], http["seq"]) == (0.4, seq)
        row = next(r for r in history_rows(server.data_dir) if r["seq"] == seq)
        assert (row["actor"], row["old_level"], row["new_level"]) == ("mqtt", 0.0, 0.4)

        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/flap/angle/set", "30")
        flap = await watch.wait_for(f"{BASE}/flap/attributes", since=mark,
                                    where=lambda m: m.json()["angle"] == 30.0)
        await watch.wait_for(f"{BASE}/flap/angle", "30.0", since=mark)
        assert pin_json(server, "flap")["seq"] == flap.json()["seq"]

        # Out of range, not a number, a level for a servo: logged and ignored.
        before = pin_json(server, "strip")["seq"]
        for topic, payload in (("strip/level/set", "1.5"), ("strip/level/set", "bright"),
                               ("flap/angle/set", "200"), ("flap/level/set", "0.5"),
                               ("nope/level/set", "0.5"), ("strip/level/set", "nan")):
            mosquitto_pub(mosquitto, f"{BASE}/{topic}", payload)
        # OFF, then ON brings back the level (brightness memory); detach by "null".
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/strip/set", "OFF")
        await watch.wait_for(f"{BASE}/strip/level", "0.0", since=mark)
        mosquitto_pub(mosquitto, f"{BASE}/strip/set", "ON")
        back = await watch.wait_for(f"{BASE}/strip/attributes", since=mark,
                                    where=lambda m: m.json()["state"] is True)
        assert back.json()["level"] == 0.4 and back.json()["seq"] == before + 3  # nothing between
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/flap/angle/set", "null")
        await watch.wait_for(f"{BASE}/flap/angle", "null", since=mark)
        assert pin_json(server, "flap")["angle"] is None

    # An HTTP change goes out on the level topic with the seq the HTTP answer carried.
    async with probe(mosquitto, f"{BASE}/strip/#") as watch:
        await watch.wait_for(f"{BASE}/strip/level", "0.4", retain=True)
        mark = watch.mark
        with server.client() as http:
            answer = http.put("/api/v1/pins/strip", json={"level": 0.75}).json()
        published = await watch.wait_for(f"{BASE}/strip/attributes", since=mark,
                                         where=lambda m: m.json()["seq"] == answer["seq"])
        assert published.json() == answer
        await watch.wait_for(f"{BASE}/strip/level", "0.75", since=mark)
