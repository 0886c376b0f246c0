"""A power cut across a scheduled switch: the server killed at 19:59, started at 20:01.

The server runs on the test-only shifted clock (``PINPANEL_TEST_NOW``, see
``pinpanel.runtime.TEST_NOW_ENV``), so "19:59" and "20:01" are moments of a real process
with a real database, minutes apart in its time and seconds apart in the test's.
"""

from __future__ import annotations

from typing import Any

from tests.support import ServerProcess

CONFIG = """
[gpio]
backend = "simulated"

[location]
latitude = 52.52
longitude = 13.405
timezone = "Europe/Berlin"

[[pins]]
pin = 17
id = "porch"
initial = "schedule"

[[pins]]
pin = 27
id = "hall"

[[schedules]]
id = "porch-on"
at = "20:00"
pins = ["porch"]

[[schedules]]
id = "porch-off"
at = "23:30"
action = "off"
pins = ["porch"]
"""


def porch(server: ServerProcess) -> dict[str, Any]:
    with server.client() as http:
        response = http.get("/api/v1/pins/porch")
        assert response.status_code == 200, response.text
        return dict(response.json())


def history(server: ServerProcess) -> list[dict[str, Any]]:
    with server.client() as http:
        response = http.get("/api/v1/history", params={"pin": "porch"})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


def test_killed_at_1959_started_at_2001_the_porch_comes_on_by_its_schedule(
        make_server: Any) -> None:
    server: ServerProcess = make_server(
        CONFIG, start=False, env={"PINPANEL_TEST_NOW": "2026-12-02T19:59:00+01:00"})
    server.start()
    assert porch(server)["state"] is False  # the latest event before 19:59: 23:30 off
    with server.client() as http:
        listed = http.get("/api/v1/schedules").json()["schedules"]
    on = next(s for s in listed if s["id"] == "porch-on")
    assert on["next_run"] == "2026-12-02T19:00:00.000Z" and on["next"] == "today 20:00"
    server.kill()  # the power goes at 19:59, before the 20:00 run
    server.env["PINPANEL_TEST_NOW"] = "2026-12-02T20:01:00+01:00"
    server.start()
    assert porch(server)["state"] is True
    newest = history(server)[0]
    assert (newest["new"], newest["cause"], newest["actor"]) == (True, "schedule",
                                                                  "schedule:porch-on")
    with server.client() as http:
        listed = http.get("/api/v1/schedules").json()["schedules"]
    on = next(s for s in listed if s["id"] == "porch-on")
    assert on["next"] == "tomorrow 20:00"
    assert "PINPANEL_TEST_NOW" in server.log()  # the override says so in the log
