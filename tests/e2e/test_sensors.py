"""Sensors end to end: a real server on the simulated board, its API, stream and /metrics.

Simulated readings appear on ``/api/v1/sensors``, as ``reading`` events on the stream and as
``pinpanel_sensor_value`` samples; a simulated error reading shows as an error in all three
(no number anywhere). Readings and their buckets come back from the readings store.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx

from pinpanel.store.readings import DB_NAME
from tests.e2e.sse import Reader, async_client
from tests.e2e.test_metrics import scrape, value, wait_for
from tests.support import ServerFactory, ServerProcess

CONFIG = """
[[pins]]
pin = 18

[[sensors]]
id = "tank"
name = "Water tank"
kind = "ds18b20"
interval_s = 1

[[sensors]]
id = "greenhouse"
kind = "bme280"
interval_s = 1

[[sensors]]
id = "water"
kind = "counter"
pin = 17
pulses_per_unit = 2
unit = "L"
interval_s = 1

[[sensors]]
id = "soc"
kind = "cpu_temperature"
interval_s = 3600
"""


def sensor(server: ServerProcess, sensor_id: str) -> dict[str, Any]:
    with server.client() as http:
        response = http.get(f"/api/v1/sensors/{sensor_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def simulate(server: ServerProcess, sensor_id: str, body: dict[str, Any]) -> httpx.Response:
    with server.client() as http:
        return http.post(f"/api/v1/sensors/{sensor_id}/simulate", json=body)


def test_every_sensor_is_listed_with_units_classes_and_a_simulated_value(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)

    def read_once() -> list[dict[str, Any]] | None:
        with server.client() as http:
            found: list[dict[str, Any]] = http.get("/api/v1/sensors").json()["sensors"]
        return found if all(s["at"] for s in found) else None

    listed = wait_for(read_once, "every sensor's first read")
    assert isinstance(listed, list)
    assert [s["id"] for s in listed] == ["tank", "greenhouse", "water", "soc"]
    by_id = {s["id"]: s for s in listed}
    tank = sensor(server, "tank")
    assert tank["name"] == "Water tank" and tank["kind"] == "ds18b20"
    assert [(r["name"], r["unit"], r["device_class"], r["state_class"])
            for r in by_id["greenhouse"]["readings"]] == [
        ("temperature", "°C", "temperature", "measurement"),
        ("humidity", "%", "humidity", "measurement"),
        ("pressure", "hPa", "pressure", "measurement")]
    assert [(r["name"], r["unit"], r["state_class"]) for r in by_id["water"]["readings"]] == [
        ("total", "L", "total_increasing"), ("rate", "L/min", "measurement")]
    # the first reads happen at start: a plausible value, a time, no error
    soc = by_id["soc"]
    assert soc["error"] is None and soc["at"] is not None
    assert 30 < soc["readings"][0]["value"] < 60


def test_a_simulated_value_and_error_reach_the_api_the_stream_and_metrics(
        make_server: ServerFactory) -> None:
    import asyncio

    server = make_server(CONFIG)

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with async_client(server) as http, Reader(http) as stream:
            await stream.wait_for(lambda r: any(e.event == "reading" for e in r.events),
                                  "the readings' opening")
            answer = await http.post("/api/v1/sensors/tank/simulate", json={"value": 31.5})
            assert answer.status_code == 200, answer.text
            assert answer.json()["readings"][0]["value"] == 31.5
            await stream.wait_for(lambda r: any(
                e.event == "reading" and e.data["sensor"] == "tank"
                and e.data["values"].get("temperature") == 31.5 for e in r.events), "31.5")
            answer = await http.post("/api/v1/sensors/tank/simulate", json={"error": "crc"})
            assert answer.status_code == 200, answer.text
            await stream.wait_for(lambda r: any(
                e.event == "reading" and e.data["sensor"] == "tank"
                and e.data["error"] == "crc" for e in r.events), "the crc error")
            readings = [e.data for e in stream.events if e.event == "reading"
                        and e.data["sensor"] == "tank"]
            return readings, [e for e in stream.events if e.event == "snapshot"]

    readings, snapshots = asyncio.run(scenario())
    assert len(snapshots) == 1  # the pins' snapshot is still first and alone
    error = next(r for r in readings if r["error"] == "crc")
    assert error["values"] == {} and error["detail"]
    # the API says error, with no number
    tank = sensor(server, "tank")
    assert tank["error"] == "crc" and tank["readings"][0]["value"] is None
    # /metrics: no value while it fails, the error counted, ok = 0
    samples = scrape(server)
    assert ("pinpanel_sensor_value", (("reading", "temperature"), ("sensor", "tank"))) \
        not in samples
    assert value(samples, "pinpanel_sensor_ok", sensor="tank") == 0
    assert value(samples, "pinpanel_sensor_read_errors_total", sensor="tank", error="crc") >= 1
    greenhouse = sensor(server, "greenhouse")["readings"]
    assert value(samples, "pinpanel_sensor_ok", sensor="greenhouse") == 1
    assert 900 < value(samples, "pinpanel_sensor_value", sensor="greenhouse",
                       reading="pressure") < 1100
    assert greenhouse[2]["value"] is not None
    # back to drifting: a value again everywhere
    assert simulate(server, "tank", {"auto": True}).json()["error"] is None
    assert value(scrape(server), "pinpanel_sensor_ok", sensor="tank") == 1


def test_counter_pulses_go_through_the_input_edges_and_add_up(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    simulate(server, "water", {"value": 0})  # stop the drift
    before = sensor(server, "water")["readings"][0]["value"]
    after = simulate(server, "water", {"value": 10}).json()["readings"][0]["value"]
    assert after == before + 5  # 10 pulses at 2 per litre


def test_readings_come_back_raw_and_in_buckets_and_survive_a_restart(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    for value_ in (20.0, 22.0, 27.0):
        assert simulate(server, "tank", {"value": value_}).status_code == 200
    with server.client() as http:
        raw = http.get("/api/v1/sensors/tank/readings", params={"step": 0}).json()
        values = [p["value"] for p in raw["series"]["temperature"]]
        assert values[-3:] == [20.0, 22.0, 27.0]
        assert raw["source"] == "raw"
        buckets = http.get("/api/v1/sensors/tank/readings", params={"step": 3600}).json()
        assert buckets["source"] == "1h"
        last = buckets["series"]["temperature"][-1]
        assert last["max"] >= 27.0 and last["min"] <= 20.0 and last["n"] >= 3
        assert http.get("/api/v1/sensors/tank/readings",
                        params={"step": "x"}).status_code == 400
        assert http.get("/api/v1/sensors/tank/readings",
                        params={"since": "yesterday"}).status_code == 400
        assert http.get("/api/v1/sensors/nope/readings").status_code == 404
        assert http.post("/api/v1/sensors/tank/simulate",
                         json={"value": "hot"}).status_code == 422
        assert http.post("/api/v1/sensors/greenhouse/simulate",
                         json={"value": 1, "reading": "wind"}).status_code == 422
    assert server.stop() == 0  # a clean stop writes the last batch
    conn = sqlite3.connect(server.data_dir / DB_NAME)
    try:
        stored = [v for (v,) in conn.execute(
            "SELECT value FROM raw JOIN series ON series.id = raw.series "
            "WHERE sensor = 'tank' ORDER BY t")]
    finally:
        conn.close()
    # the three set values, in order; the sampler may have read the held 27.0 again since
    start = len(stored) - 1 - stored[::-1].index(20.0)
    assert stored[start:start + 3] == [20.0, 22.0, 27.0]
    assert set(stored[start + 3:]) <= {27.0}


def test_sensors_are_in_the_openapi_document(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    with server.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/sensors", "/api/v1/sensors/{sensor}",
                 "/api/v1/sensors/{sensor}/readings", "/api/v1/sensors/{sensor}/simulate"):
        assert path in paths
    assert "post" in paths["/api/v1/sensors/{sensor}/simulate"]
