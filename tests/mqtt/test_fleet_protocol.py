"""Each Pi describes itself, answers a refresh, and answers a command that carries an id.

A real pinpanel process and a real mosquitto: what a hub relies on, seen from the broker.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.mqtt.conftest import BASE, PINS, mosquitto_pub, mqtt_config, probe, wait_online

from pinpanel import __version__
from pinpanel.fleetwire import FLEET_REFRESH
from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

GROUPED = PINS + """
[[groups]]
id = "garden"
name = "Garden"
pins = ["relay_a", "lamp"]
"""


async def test_device_message_refresh_and_results(make_server: Any,
                                                  mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto, GROUPED))
    await wait_online(mosquitto)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        found = await watch.wait_for(f"{BASE}/device", retain=True)
        about = found.json()
        assert about["device_id"] == "t1" and about["base"] == BASE
        assert about["version"] == __version__ and about["schema"] == 1
        assert about["url"].startswith("http://") and about["url"].endswith(":" + str(
            server.port) + "/")
        pins = {p["id"]: (p["mode"], p["kind"], p["pin"]) for p in about["pins"]}
        assert pins == {"relay_a": ("output", "output", 17), "relay_b": ("output", "output", 27),
                        "lamp": ("output", "output", 22), "button": ("input", "input", 5)}
        groups = {g["id"]: g["pins"] for g in about["groups"]}
        assert groups["garden"] == ["relay_a", "lamp"]
        assert set(groups["all"]) == {"relay_a", "relay_b", "lamp"}
        assert about["sensors"] == []

        # A refresh on the device's own topic, then the fleet-wide one: everything again.
        for request in (f"{BASE}/refresh", FLEET_REFRESH):
            mark = watch.mark
            mosquitto_pub(mosquitto, request, "")
            await watch.wait_for(f"{BASE}/device", since=mark)
            for pin in ("relay_a", "relay_b", "lamp", "button"):
                await watch.wait_for(f"{BASE}/{pin}/attributes", since=mark)
            await watch.wait_for(f"{BASE}/status", "online", since=mark)

        # Plain payloads still work and are not answered.
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/lamp/set", "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)

        # A command with an id is answered with the seq it was committed as.
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/relay_a/set", json.dumps({"id": "c1", "state": "ON"}))
        answer = (await watch.wait_for(f"{BASE}/result", since=mark,
                                       where=lambda m: m.json()["id"] == "c1")).json()
        attributes = (await watch.wait_for(f"{BASE}/relay_a/attributes", since=mark)).json()
        assert answer["result"] == "ok" and answer["target"] == "relay_a"
        assert answer["seq"] == attributes["seq"] and attributes["state"] is True
        assert [p["id"] for p in answer["pins"]] == ["relay_a"]
        assert not (watch.latest(f"{BASE}/result") or found).retain

        # Refusals say why.
        cases = {
            "c2": (f"{BASE}/nope/set", {"state": "ON"}, "unknown_pin"),
            "c3": (f"{BASE}/button/set", {"state": "ON"}, "input"),
            "c4": (f"{BASE}/lamp/set", {"state": "MAYBE"}, "invalid"),
            "c5": (f"{BASE}/group/nope/set", {"state": "OFF"}, "unknown_group"),
        }
        mark = watch.mark
        for ident, (topic, body, _) in cases.items():
            mosquitto_pub(mosquitto, topic, json.dumps({"id": ident, **body}))
        for ident, (_, _, reason) in cases.items():
            answer = (await watch.wait_for(f"{BASE}/result", since=mark,
                                           where=lambda m, i=ident: m.json()["id"] == i)).json()
            assert answer["result"] == "refused" and answer["reason"] == reason, answer
            assert answer["detail"]

        # A group command is one commit: the answer carries its highest seq and every pin.
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/group/garden/set",
                      json.dumps({"id": "g1", "state": "OFF"}))
        answer = (await watch.wait_for(f"{BASE}/result", since=mark,
                                       where=lambda m: m.json()["id"] == "g1")).json()
        assert answer["result"] == "ok" and answer["target"] == "group/garden"
        assert {p["id"]: p["state"] for p in answer["pins"]} == {"relay_a": False,
                                                                 "lamp": False}
        assert answer["seq"] == max(p["seq"] for p in answer["pins"])
    with server.client() as http:
        seqs = {p["id"]: p["seq"] for p in http.get("/api/v1/pins").json()["pins"]}
    assert answer["seq"] == max(seqs["relay_a"], seqs["lamp"])
