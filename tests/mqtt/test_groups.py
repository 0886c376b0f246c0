"""Groups and scenes over MQTT: a real pinpanel process, a real mosquitto."""

from __future__ import annotations

from typing import Any

import pytest
from tests.mqtt.conftest import (
    BASE,
    PINS,
    entity,
    history_rows,
    mosquitto_pub,
    mqtt_config,
    probe,
    wait_online,
)

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

SCENES = PINS + """
[[groups]]
id = "relays"
name = "Relays"
pins = ["relay_a", "lamp"]

[[scenes]]
id = "evening"
name = "Evening"
set = { relay_b = "on", lamp = "on" }
"""


async def test_group_and_scene_commands_and_the_scene_entity(make_server: Any,
                                                             mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto, SCENES))
    await wait_online(mosquitto)
    async with probe(mosquitto, f"{BASE}/#", "homeassistant/scene/#") as watch:
        found = await watch.wait_for(entity("scene", "evening"), retain=True)
        payload = found.json()
        assert payload["name"] == "Evening"
        assert payload["unique_id"] == "pinpanel_t1_scene_evening"
        assert payload["command_topic"] == f"{BASE}/scene/evening/set"
        assert payload["payload_on"] == "ON"
        assert payload["device"]["identifiers"] == ["pinpanel_t1"]
        assert payload["availability"][0]["topic"] == f"{BASE}/status"
        mark = watch.mark
        # What Home Assistant sends when the scene is activated.
        mosquitto_pub(mosquitto, payload["command_topic"], "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
        await watch.wait_for(f"{BASE}/relay_b/state", "ON", since=mark)
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/group/relays/set", "ON")  # relay_a: interlock
        await watch.wait_for(f"{BASE}/relay_a/state", "ON", since=mark)
        await watch.wait_for(f"{BASE}/relay_b/state", "OFF", since=mark)
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/group/all/set", "OFF")
        for pin in ("relay_a", "lamp"):
            await watch.wait_for(f"{BASE}/{pin}/state", "OFF", since=mark)
        mosquitto_pub(mosquitto, f"{BASE}/group/nope/set", "ON")  # ignored, logged
        mosquitto_pub(mosquitto, f"{BASE}/scene/evening/set", "OFF")  # not a scene word
        mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "TOGGLE")  # a marker behind them
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
    with server.client() as http:
        pins = {p["id"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
    del pins["button"]  # an input, pulled up
    assert pins == {"relay_a": False, "relay_b": False, "lamp": True}
    rows = history_rows(server.data_dir)
    scene_rows = [r for r in rows if r["cause"] == "scene"]
    assert {r["pin_id"] for r in scene_rows} == {"relay_b", "lamp"}
    assert sorted(r["seq"] for r in scene_rows)[1] - sorted(r["seq"] for r in scene_rows)[0] == 1
    assert {r["actor"] for r in scene_rows} == {"mqtt"}
    group_rows = [r for r in rows if r["cause"] in ("group", "interlock")]
    assert {(r["pin_id"], r["cause"]) for r in group_rows} >= {
        ("relay_a", "group"), ("relay_b", "interlock"), ("lamp", "group")}
