"""The bridge follows a live apply of the config (PUT /api/v1/settings), without a restart."""

from __future__ import annotations

from typing import Any

import pytest
from tests.mqtt.conftest import (
    BASE,
    DISCOVERY,
    PINS,
    assert_valid_entity,
    entity,
    mqtt_config,
    probe,
    wait_online,
)

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt


async def test_a_pin_added_by_put_appears_and_a_removed_one_is_cleared(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto, PINS))
    await wait_online(mosquitto)
    async with probe(mosquitto, DISCOVERY, f"{BASE}/+/state", f"{BASE}/device") as watch:
        await watch.wait_for(entity("switch", "lamp"), retain=True)
        mark = watch.mark
        with server.client() as http:
            now = http.get("/api/v1/settings").json()
            pins = [p for p in now["pins"] if p["id"] != "lamp"]
            pins.append({"pin": 23, "id": "fan", "name": "Fan", "initial": "on"})
            response = http.put("/api/v1/settings", json={
                "pins": pins, "interlocks": now["interlocks"]})
            assert response.status_code == 200, response.text
            assert response.json()["added"] == [23] and response.json()["removed"] == [22]
        # The added pin: its entity, its state, the device again; all without a restart.
        added = await watch.wait_for(entity("switch", "fan"), since=mark,
                                     where=lambda m: m.payload != b"")
        assert_valid_entity(added.topic, added.json())
        await watch.wait_for(f"{BASE}/fan/state", "ON", since=mark)
        device = await watch.wait_for(f"{BASE}/device", since=mark, where=lambda m: any(
            p["id"] == "fan" for p in m.json()["pins"]))
        assert "lamp" not in [p["id"] for p in device.json()["pins"]]
        # The removed pin: its entities and retained state cleared (empty retained payloads).
        for gone in (entity("switch", "lamp"), entity("button", "lamp")):
            await watch.wait_for(gone, b"", since=mark)
        await watch.wait_for(f"{BASE}/lamp/state", b"", since=mark)
    assert server.stop() == 0
