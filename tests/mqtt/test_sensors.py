"""Sensors over a real mosquitto: ``<base>/<sensor>/state`` and valid HA ``sensor`` entities."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tests.mqtt.conftest import BASE, HA_ABBREVIATED, mqtt_config, probe, render, wait_online
from tests.mqtt.test_bridge import retained_entities
from tests.support import ServerProcess

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

SENSORS = """
[[pins]]
pin = 18
id = "relay"

[[sensors]]
id = "tank"
name = "Tank"
kind = "ds18b20"
interval_s = 3600

[[sensors]]
id = "greenhouse"
name = "Greenhouse"
kind = "bme280"
interval_s = 3600

[[sensors]]
id = "water"
name = "Water"
kind = "counter"
pin = 17
unit = "L"
interval_s = 3600
"""
#: (sensor_reading, device_class, unit, state_class) of every sensor entity.
EXPECTED = {
    "tank_temperature": ("temperature", "°C", "measurement"),
    "greenhouse_temperature": ("temperature", "°C", "measurement"),
    "greenhouse_humidity": ("humidity", "%", "measurement"),
    "greenhouse_pressure": ("pressure", "hPa", "measurement"),
    "water_total": (None, "L", "total_increasing"),
    "water_rate": (None, "L/min", "measurement"),
}
#: Home Assistant's sensor device classes that take these units (a subset of its table).
HA_UNITS = {"temperature": {"°C", "°F", "K"}, "humidity": {"%"},
            "pressure": {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}}


def simulate(server: ServerProcess, sensor: str, body: dict[str, Any]) -> None:
    with server.client() as http:
        answer = http.post(f"/api/v1/sensors/{sensor}/simulate", json=body)
    assert answer.status_code == 200, answer.text


def assert_valid_sensor(topic: str, payload: dict[str, Any]) -> str:
    match = re.fullmatch(r"homeassistant/sensor/(pinpanel_t1)/([a-zA-Z0-9_-]+)/config", topic)
    assert match, topic
    node, component = match.groups()
    assert payload["device"]["identifiers"] == [node]
    assert payload["unique_id"] == f"{node}_{component}"
    assert not HA_ABBREVIATED & set(payload)
    assert payload["state_topic"] == payload["json_attributes_topic"]
    assert payload["state_class"] in {"measurement", "total_increasing"}
    device_class = payload.get("device_class")
    if device_class is not None:
        assert payload["unit_of_measurement"] in HA_UNITS[device_class]
    assert payload["availability_mode"] == "all"
    assert payload["availability"][0]["topic"] == f"{BASE}/status"
    assert payload["qos"] == 1 and payload["name"]
    return component


async def test_sensor_entities_validate_and_states_carry_values_then_errors(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server: ServerProcess = make_server(mqtt_config(mosquitto, SENSORS))
    await wait_online(mosquitto)
    configs = await retained_entities(mosquitto, "homeassistant/sensor/pinpanel_t1/+/config")
    found = {}
    for topic, message in configs.items():
        payload = message.json()
        component = assert_valid_sensor(topic, payload)
        found[component] = payload
        assert (payload.get("device_class"), payload["unit_of_measurement"],
                payload["state_class"]) == EXPECTED[component]
    assert set(found) == set(EXPECTED)
    # the pins' entities are still there beside them, on the same device
    pins = await retained_entities(mosquitto, "homeassistant/switch/pinpanel_t1/+/config")
    assert {m.json()["device"]["identifiers"][0] for m in pins.values()} == {"pinpanel_t1"}

    tank = found["tank_temperature"]
    state_topic = f"{BASE}/tank/state"
    assert tank["state_topic"] == state_topic
    async with probe(mosquitto, f"{BASE}/+/state") as watch:
        retained = await watch.wait_for(f"{BASE}/greenhouse/state", retain=True)
        body = retained.json()
        assert set(body) >= {"temperature", "humidity", "pressure", "at", "error"}
        assert body["error"] is None
        mark = watch.mark
        simulate(server, "tank", {"value": 23.75})
        message = await watch.wait_for(state_topic, since=mark,
                                       where=lambda m: m.json().get("temperature") == 23.75)
        # what Home Assistant makes of it: the value, and the entity available
        assert render(tank["value_template"], message.payload) == "23.75"
        assert render(tank["availability"][1]["value_template"], message.payload) == "online"
        mark = watch.mark
        simulate(server, "tank", {"error": "power_on"})
        message = await watch.wait_for(state_topic, since=mark,
                                       where=lambda m: m.json().get("error") == "power_on")
        assert message.json()["temperature"] is None
        # an error is never a number: HA's "None" (unknown) and the entity unavailable
        assert render(tank["value_template"], message.payload) == "None"
        assert render(tank["availability"][1]["value_template"], message.payload) == "offline"
    # the error is what stays retained for a Home Assistant that connects now
    async with probe(mosquitto, state_topic) as late:
        retained = await late.wait_for(state_topic, retain=True)
        assert retained.json()["error"] == "power_on"


async def test_a_sensor_removed_from_the_config_leaves_nothing_retained(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server: ServerProcess = make_server(mqtt_config(mosquitto, SENSORS))
    await wait_online(mosquitto)
    before = await retained_entities(mosquitto, "homeassistant/sensor/pinpanel_t1/+/config")
    assert "homeassistant/sensor/pinpanel_t1/greenhouse_humidity/config" in before
    assert server.stop() == 0
    without = SENSORS.split("[[sensors]]\nid = \"greenhouse\"")[0] + SENSORS.split(
        'interval_s = 3600\n', 2)[2]
    assert "greenhouse" not in without and "water" in without
    server.config_text = mqtt_config(mosquitto, without)
    server.start()
    await wait_online(mosquitto)
    after = await retained_entities(mosquitto, "homeassistant/sensor/pinpanel_t1/+/config")
    assert {t.split("/")[3] for t in after} == {
        "tank_temperature", "water_total", "water_rate"}
    async with probe(mosquitto, f"{BASE}/+/state", "pinpanel/test/end") as watch:
        await watch.publish("pinpanel/test/end", b"end")
        await watch.wait_for("pinpanel/test/end", b"end")
        assert watch.latest(f"{BASE}/greenhouse/state") is None
        assert watch.latest(f"{BASE}/tank/state") is not None
