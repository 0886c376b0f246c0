"""Commands over MQTT when the durable commit fails: one error path for a pin and a group.

A real pinpanel process and a real mosquitto; the failure is a trigger put into the
server's database from beside it (SQLite sees the schema change on its next write), so the
commit really fails in the server's writer, as a full or failing SD card would make it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.mqtt.conftest import BASE, PINS, mosquitto_pub, mqtt_config, probe, wait_online

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt

GROUPED = PINS + """
[[groups]]
id = "garden"
name = "Garden"
pins = ["relay_a", "lamp"]
"""
FAIL_ON_LAMP = ("CREATE TRIGGER fail_lamp BEFORE INSERT ON history WHEN NEW.pin_id = 'lamp' "
                "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")


def execute(data_dir: Path, sql: str) -> None:
    conn = sqlite3.connect(data_dir / "pinpanel.sqlite3")
    try:
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


async def test_a_failed_commit_refuses_pin_and_group_commands_alike(
        make_server: Any, mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto, GROUPED))
    await wait_online(mosquitto)
    execute(server.data_dir, FAIL_ON_LAMP)
    async with probe(mosquitto, f"{BASE}/#") as watch:
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/lamp/set", json.dumps({"id": "p1", "state": "ON"}))
        mosquitto_pub(mosquitto, f"{BASE}/group/garden/set",
                      json.dumps({"id": "g1", "state": "ON"}))
        for ident, target in (("p1", "lamp"), ("g1", "group/garden")):
            answer = (await watch.wait_for(f"{BASE}/result", since=mark,
                                           where=lambda m, i=ident: m.json()["id"] == i)).json()
            assert (answer["result"], answer["reason"], answer["target"]) == (
                "refused", "store", target), answer
            assert "disk on fire" in answer["detail"]
        with server.client() as http:
            pins = {p["id"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
        assert (pins["lamp"], pins["relay_a"]) == (False, False)  # both put back
        execute(server.data_dir, "DROP TRIGGER fail_lamp")
        mark = watch.mark
        mosquitto_pub(mosquitto, f"{BASE}/group/garden/set",
                      json.dumps({"id": "g2", "state": "ON"}))
        answer = (await watch.wait_for(f"{BASE}/result", since=mark,
                                       where=lambda m: m.json()["id"] == "g2")).json()
        assert answer["result"] == "ok", answer
        assert {p["id"]: p["state"] for p in answer["pins"]} == {"relay_a": True, "lamp": True}
    log = server.log()
    assert log.count("not applied: ") >= 2 and "Traceback" not in log
