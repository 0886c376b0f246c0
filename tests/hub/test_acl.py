"""The documented mosquitto ACL: one Pi's credentials cannot switch another Pi's pins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from pinpanel.local_broker import LocalBroker
from tests.hub.conftest import hub_config, pi_config, wait_devices
from tests.mqtt.conftest import history_rows

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "examples" / "mosquitto" / "pinpanel.acl"
USERS = {"pa": "secret-a", "pb": "secret-b", "hub": "secret-hub"}


async def test_a_pi_cannot_command_another_pi_but_the_hub_can(make_server: Any,
                                                              tmp_path: Path) -> None:
    assert ACL.read_text() in (REPO / "README.md").read_text()  # the README shows this file
    broker = LocalBroker(tmp_path / "broker", users=USERS, extra=[f"acl_file {ACL}"]).start()
    try:
        make_server(pi_config(broker, "pa", username="pa", password=USERS["pa"]), name="pa")
        pb = make_server(pi_config(broker, "pb", username="pb", password=USERS["pb"]),
                         name="pb")
        hub = make_server(hub_config(broker, {"username": "hub", "password": USERS["hub"]}),
                          name="hub")
        wait_devices(hub, lambda s: all(s.get(d, {}).get("online") for d in ("pa", "pb")))

        # Pi a's credentials: its own pins yes, Pi b's no (the broker drops the message).
        async with aiomqtt.Client("127.0.0.1", broker.port, username="pa",
                                  password=USERS["pa"], identifier="intruder") as intruder:
            await intruder.publish("pinpanel/pb/lamp/set", "ON", qos=1)
            await intruder.publish("pinpanel/pb/group/garden/set", "ON", qos=1)
            await intruder.publish("pinpanel/fleet/refresh", b"", qos=1)
        # Then the hub toggles the same pins: commands for one pin apply in arrival order, so
        # had the intruder's ON got through, the toggle would turn them off.
        with hub.client() as http:
            answer = http.post("/api/v1/hub/commands", json={
                "action": "toggle", "targets": [{"device": "pb", "pin": "lamp"},
                                                {"device": "pb", "pin": "relay_a"},
                                                {"device": "pa", "pin": "lamp"}]},
                timeout=30).json()
        assert [r["status"] for r in answer["results"]] == ["confirmed"] * 3, answer
        with pb.client() as http:
            pins = {p["id"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
        assert pins["lamp"] is True and pins["relay_a"] is True
        assert [r["cause"] for r in history_rows(pb.data_dir) if r["actor"] == "mqtt"] == [
            "mqtt", "mqtt"]
    finally:
        broker.kill()
