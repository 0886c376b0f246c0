"""The hub end to end: two Pis and a hub, each a real pinpanel process, on a real mosquitto."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from pinpanel.fleetwire import FLEET_REFRESH
from pinpanel.local_broker import LocalBroker
from tests.hub.conftest import hub_config, pi_config, wait_devices
from tests.mqtt.conftest import probe

pytestmark = pytest.mark.mqtt


def online(*ids: str) -> Any:
    return lambda seen: all(seen.get(i, {}).get("status") == "online" and len(
        seen[i]["pins"]) == 3 and all("seq" in p for p in seen[i]["pins"]) for i in ids)


def command(hub: Any, body: dict[str, Any]) -> dict[str, Any]:
    with hub.client() as http:
        answer = http.post("/api/v1/hub/commands", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_devices_commands_confirmed_refused_group_offline_and_back(
        make_server: Any, mosquitto: LocalBroker) -> None:
    pi1 = make_server(pi_config(mosquitto, "p1"), name="p1")
    pi2 = make_server(pi_config(mosquitto, "p2"), name="p2")
    hub = make_server(hub_config(mosquitto), name="hub")
    seen = wait_devices(hub, online("p1", "p2"))
    p1 = seen["p1"]
    assert p1["url"] == f"http://127.0.0.1:{pi1.port}/" and p1["version"]
    assert p1["base"] == "pinpanel/p1" and p1["controllable"] and p1["last_seen"]
    assert {p["id"]: p["kind"] for p in p1["pins"]} == {"relay_a": "output", "lamp": "output",
                                                        "button": "input"}
    assert {g["id"] for g in p1["groups"]} == {"all", "garden"}

    # One pin of one Pi: confirmed with the seq that Pi committed.
    answer = command(hub, {"action": "on", "targets": [{"device": "p1", "pin": "relay_a"}]})
    (row,) = answer["results"]
    assert row["status"] == "confirmed" and row["ms"] >= 0, row
    with pi1.client() as http:
        pin = http.get("/api/v1/pins/relay_a").json()
    assert pin["state"] is True and row["seq"] == pin["seq"]

    # Refusals say why.
    answer = command(hub, {"action": "on", "targets": [{"device": "p1", "pin": "button"},
                                                       {"device": "p2", "pin": "nope"}]})
    reasons = {(r["device"], r["status"], r["reason"]) for r in answer["results"]}
    assert reasons == {("p1", "refused", "input"), ("p2", "refused", "unknown_pin")}
    assert answer["counts"] == {"confirmed": 0, "refused": 2, "timeout": 0, "not_sent": 0}

    # A fleet-wide group command: every Pi with the group, one row each.
    answer = command(hub, {"action": "on", "group": "garden"})
    rows = {r["device"]: r for r in answer["results"]}
    assert set(rows) == {"p1", "p2"}
    for device, server in (("p1", pi1), ("p2", pi2)):
        assert rows[device]["status"] == "confirmed" and rows[device]["target"] == "group/garden"
        with server.client() as http:
            pins = {p["id"]: p for p in http.get("/api/v1/pins").json()["pins"]}
        assert pins["relay_a"]["state"] and pins["lamp"]["state"]
        assert rows[device]["seq"] == max(pins["relay_a"]["seq"], pins["lamp"]["seq"])
    wait_devices(hub, lambda s: all(p["state"] for d in ("p1", "p2")
                                    for p in s[d]["pins"] if p["id"] in ("relay_a", "lamp")))

    # Bad requests are problems, not 500s.
    with hub.client() as http:
        for body in ({"action": "dim", "group": "garden"}, {"action": "on"},
                     {"action": "on", "group": "nowhere"},
                     {"action": "on", "targets": [{"device": "p9", "pin": "lamp"}]}):
            bad = http.post("/api/v1/hub/commands", json=body)
            assert bad.status_code == 422, (body, bad.text)
            assert bad.headers["content-type"].startswith("application/problem+json")
        read_only = hub.create_token("reader", "read")
        assert http.post("/api/v1/hub/commands", json={"action": "on", "group": "garden"},
                         headers={"Authorization": f"Bearer {read_only}"}).status_code == 403
        document = http.get("/openapi.json").json()
    assert httpx.get(f"{hub.url}/api/v1/hub/devices").status_code == 401
    assert {"/api/v1/hub/devices", "/api/v1/hub/stream", "/api/v1/hub/commands"} <= set(
        document["paths"])
    assert document["paths"]["/api/v1/hub/commands"]["post"]["requestBody"]

    # A Pi that vanishes is shown offline (the broker's last will); a command says no answer.
    pi2.kill()
    wait_devices(hub, lambda s: s["p2"]["status"] == "offline" and s["p1"]["online"])
    answer = command(hub, {"action": "off", "group": "garden", "timeout_ms": 500})
    rows = {r["device"]: r for r in answer["results"]}
    assert rows["p1"]["status"] == "confirmed"
    assert rows["p2"]["status"] == "timeout" and "no answer after 500 ms" in rows["p2"]["detail"]
    pi2.start()
    wait_devices(hub, online("p1", "p2"))


async def test_the_stream_and_a_hub_restarted_mid_way(make_server: Any,
                                                      mosquitto: LocalBroker) -> None:
    pi1 = make_server(pi_config(mosquitto, "p1"), name="p1")
    hub = make_server(hub_config(mosquitto), name="hub")
    wait_devices(hub, online("p1"))
    async with httpx.AsyncClient(base_url=hub.url, timeout=30, headers={
            "Authorization": f"Bearer {hub.token}"}) as http, \
            http.stream("GET", "/api/v1/hub/stream") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.aiter_lines()
        snapshot = await _next_event(lines, "snapshot")
        assert [d["device_id"] for d in snapshot["devices"]] == ["p1"]
        with pi1.client() as pi:
            changed = pi.post("/api/v1/pins/lamp/toggle").json()
        while True:
            device = await _next_event(lines, "device")
            lamp = next(p for p in device["pins"] if p["id"] == "lamp")
            if lamp["seq"] == changed["seq"]:
                assert lamp["state"] is True
                break

    # The hub goes away; a pin changes meanwhile; the restarted hub asks the fleet to
    # refresh and shows the Pi as it is now.
    hub.kill()
    with pi1.client() as pi:
        changed = pi.post("/api/v1/pins/relay_a/on").json()
    async with probe(mosquitto, FLEET_REFRESH, "pinpanel/p1/device") as watch:
        mark = watch.mark
        hub.start()
        await watch.wait_for(FLEET_REFRESH, since=mark)
        answered = await watch.wait_for("pinpanel/p1/device", since=mark, retain=False)
        assert json.loads(answered.payload)["device_id"] == "p1"
    seen = wait_devices(hub, lambda s: "p1" in s and any(
        p["id"] == "relay_a" and p.get("seq") == changed["seq"] for p in s["p1"]["pins"]))
    assert seen["p1"]["online"]


async def _next_event(lines: Any, name: str) -> Any:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[len("data: "):])
    raise AssertionError(f"the stream ended before a {name} event")
