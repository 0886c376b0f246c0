"""Sensors over HTTP: the latest readings, their history by bucket, and simulated values.

``GET /api/v1/sensors`` and ``/api/v1/sensors/{sensor}`` answer from the sampler's memory
(the last published sample: the one the event stream and MQTT carried). ``.../readings`` is
served by the readings store from the finest table that holds the range (raw, 1-minute or
1-hour rollups; see :meth:`~pinpanel.store.readings.ReadingStore.source_for`), including the
batch not yet written. ``POST .../simulate`` exists for the simulated board only. The chart
(:mod:`pinpanel.web.charts`) is drawn from the same buckets.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.changes import format_time
from pinpanel.errors import UnknownSensorError
from pinpanel.sensors.model import Sample
from pinpanel.sensors.sampler import Sampler, SensorState
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.openapi import json_body, json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

#: The most points one readings answer holds; ask for a larger step beyond it.
MAX_POINTS = 10_000
DAY_S = 86_400


def sampler_of(request: Request) -> Sampler | None:
    sampler: Sampler | None = getattr(request.app.state, "sensors", None)
    return sampler


def _state(request: Request) -> SensorState:
    sampler = sampler_of(request)
    sensor_id = request.path_params["sensor"]
    if sampler is None:
        raise UnknownSensorError(f"no sensor {sensor_id!r} (no [[sensors]] are configured)")
    return sampler.state(sensor_id)


def _time(at: float) -> str:
    return format_time(datetime.fromtimestamp(at, UTC))


@functools.lru_cache(maxsize=64)
def _date(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")


def point_time(at: float) -> str:
    """A stored reading's time (whole milliseconds) as :func:`format_time` writes it.

    Why not :func:`_time`: a day of raw readings is 2,880 points, and ``datetime`` plus
    ``strftime`` per point was three quarters of the answer's CPU. The stored times are whole
    milliseconds, so arithmetic on them gives the same text (a test compares the two).
    """
    ms = round(at * 1000)
    seconds, milli = divmod(ms, 1000)
    day, of_day = divmod(seconds, 86_400)
    hour, rest = divmod(of_day, 3600)
    minute, second = divmod(rest, 60)
    return f"{_date(day)}{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def sensor_json(state: SensorState) -> dict[str, Any]:
    """A sensor as the API shows it: each reading with its latest value, or the error."""
    sample: Sample | None = state.latest
    values = sample.values if sample is not None else {}
    return {
        "id": state.config.id, "name": state.config.name, "kind": state.config.kind,
        "interval_s": state.config.interval_s,
        "readings": [{**q.as_json(), "value": values.get(q.name)} for q in state.quantities],
        "at": sample.at_text if sample is not None else None,
        "error": sample.error if sample is not None else None,
        "detail": sample.detail if sample is not None else None,
    }


async def list_sensors(request: Request) -> Response:
    sampler = sampler_of(request)
    states = sampler.states.values() if sampler is not None else ()
    return JSONResponse({"sensors": [sensor_json(s) for s in states]})


async def get_sensor(request: Request) -> Response:
    return JSONResponse(sensor_json(_state(request)))


def _moment(request: Request, name: str, default: float) -> float:
    """A query time: Unix seconds or RFC 3339 (``2026-01-02T03:04:05Z``)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise Problem(400, f"{name} must be Unix seconds or an RFC 3339 time, got "
                               f"{raw!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise Problem(400, f"{name} must be a finite number")
    return value


def query_range(request: Request, now: float) -> tuple[float, float, int]:
    """``since``, ``until`` and ``step`` from the query, checked (default: the last 24 h raw)."""
    until = _moment(request, "until", now)
    since = _moment(request, "since", until - DAY_S)
    raw_step = request.query_params.get("step", "0")
    if not (raw_step.isdecimal() and raw_step.isascii()):
        raise Problem(400, f"step must be a whole number of seconds, got {raw_step!r}")
    step = int(raw_step)
    if since >= until:
        raise Problem(400, "since must be before until")
    if step and (until - since) / step > MAX_POINTS:
        raise Problem(400, f"that is more than {MAX_POINTS} buckets: use a larger step")
    return since, until, step


async def readings(request: Request) -> Response:
    state = _state(request)
    sampler = sampler_of(request)
    store = sampler.store if sampler is not None else None
    if store is None:
        raise Problem(503, "the readings store is not open")
    since, until, step = query_range(request, time.time())
    series: dict[str, list[dict[str, Any]]] = {}
    source = "raw"
    for q in state.quantities:
        if step == 0:
            points = await asyncio.to_thread(store.raw, state.config.id, q.name, since, until,
                                             MAX_POINTS + 1)
            if len(points) > MAX_POINTS:
                raise Problem(400, f"more than {MAX_POINTS} raw readings in that range: give "
                                   "a step (seconds per bucket)")
            series[q.name] = [{"at": point_time(p.at), "value": p.value, "error": p.error}
                              for p in points]
        else:
            source, buckets = await asyncio.to_thread(store.buckets, state.config.id, q.name,
                                                      since, until, step)
            series[q.name] = [{"at": point_time(b.at), "n": b.n, "min": b.min, "avg": b.avg,
                               "max": b.max} for b in buckets]
    return JSONResponse({"sensor": state.config.id, "since": _time(since), "until": _time(until),
                         "step": step, "source": source, "series": series})


async def simulate(request: Request) -> Response:
    state = _state(request)
    sampler = sampler_of(request)
    assert sampler is not None
    if not sampler.simulated:
        raise Problem(404, "sensors can be set by hand only on the simulated board")
    body = expect_object(await read_json(request),
                         {"value": object, "reading": str, "error": str, "auto": bool})
    value = body.get("value")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value)):
        raise Problem(422, "field 'value' must be a number")
    error = body.get("error")
    if error is not None and not (error and error.isascii() and len(error) <= 32):
        raise Problem(422, "field 'error' must be a short code such as 'crc'")
    if value is None and error is None and not body.get("auto"):
        raise Problem(422, "give a value, an error or auto: true")
    if value is not None and error is not None:
        raise Problem(422, "give a value or an error, not both")
    await sampler.simulate(state.config.id, value=None if value is None else float(value),
                           reading=body.get("reading"), error=error,
                           auto=bool(body.get("auto")))
    return JSONResponse(sensor_json(state))


# -- the routes and their document -------------------------------------------------------

SENSOR_PARAM = {"name": "sensor", "in": "path", "required": True,
                "description": "The sensor's id ([[sensors]] id)", "schema": {"type": "string"}}
WHY = {400: "Bad query (time, step, or too many points)", 404: "Unknown sensor",
       413: "Body too large", 415: "Body is not JSON", 422: "Body has the wrong shape or values",
       503: "The readings store is not open"}
_VALUE = {"type": ["number", "null"]}
SCHEMAS: dict[str, Any] = {
    "Sensor": {"type": "object",
               "required": ["id", "name", "kind", "interval_s", "readings", "at", "error"],
               "properties": {
                   "id": {"type": "string"}, "name": {"type": "string"},
                   "kind": {"type": "string", "enum": ["ds18b20", "bme280", "mcp3008",
                                                       "cpu_temperature", "counter"]},
                   "interval_s": {"type": "integer"},
                   "readings": {"type": "array", "items": {"type": "object", "properties": {
                       "name": {"type": "string"}, "unit": {"type": "string"},
                       "device_class": {"type": ["string", "null"]},
                       "state_class": {"type": "string",
                                       "enum": ["measurement", "total_increasing"]},
                       "value": {**_VALUE, "description": "null while the last read failed"},
                   }}},
                   "at": {"type": ["string", "null"], "format": "date-time",
                          "description": "When the last published sample was read"},
                   "error": {"type": ["string", "null"],
                             "description": "The last read's error code (crc, power_on, "
                                            "missing, io, unavailable...), null when good"},
                   "detail": {"type": ["string", "null"]}}},
    "SensorList": {"type": "object", "required": ["sensors"], "properties": {
        "sensors": {"type": "array", "items": ref("Sensor")}}},
    "Readings": {"type": "object", "properties": {
        "sensor": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"}, "step": {"type": "integer"},
        "source": {"type": "string", "enum": ["raw", "1m", "1h"]},
        "series": {"type": "object", "description": "Per reading: raw points {at, value, "
                   "error} (step 0) or buckets {at, n, min, avg, max}",
                   "additionalProperties": {"type": "array", "items": {"type": "object"}}}}},
    "SensorSimulateBody": {"type": "object", "additionalProperties": False, "properties": {
        "value": {"type": "number", "description": "Pin this value (a counter: pulses now)"},
        "reading": {"type": "string", "description": "Which reading (default: the first)"},
        "error": {"type": "string", "description": "Pin this error code, e.g. crc"},
        "auto": {"type": "boolean", "description": "Drift on its own again"}}},
}
_SENSOR = {"Sensor": SCHEMAS["Sensor"]}
_QUERY = [
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Unix seconds or RFC 3339; default until - 24 h"},
    {"name": "until", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "Unix seconds or RFC 3339; default now"},
    {"name": "step", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0},
     "description": "0: raw readings; else buckets of step seconds with min/avg/max"},
]


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/api/v1/sensors", list_sensors, methods=["GET"], name="sensors",
                 policy="read", schemas={**_SENSOR, "SensorList": SCHEMAS["SensorList"]},
                 openapi={"summary": "Every sensor with its latest readings",
                          "tags": ["sensors"], "responses": {
                              "200": json_response(ref("SensorList"), "All sensors")}}),
        ApiRoute("/api/v1/sensors/{sensor}", get_sensor, methods=["GET"], name="sensor",
                 policy="read", schemas=_SENSOR,
                 openapi={"summary": "One sensor", "tags": ["sensors"],
                          "parameters": [SENSOR_PARAM],
                          "responses": {"200": json_response(ref("Sensor"), "The sensor"),
                                        **problems(WHY, 404)}}),
        ApiRoute("/api/v1/sensors/{sensor}/readings", readings, methods=["GET"],
                 name="sensor_readings", policy="read",
                 schemas={"Readings": SCHEMAS["Readings"]},
                 openapi={"summary": "A sensor's readings over time", "tags": ["sensors"],
                          "description": "Raw readings are kept 48 h, 1-minute buckets 30 "
                                         "days, 1-hour buckets 2 years; a step is served from "
                                         "the finest that holds the range.",
                          "parameters": [SENSOR_PARAM, *_QUERY],
                          "responses": {"200": json_response(ref("Readings"), "The readings"),
                                        **problems(WHY, 400, 404, 503)}}),
        ApiRoute("/api/v1/sensors/{sensor}/simulate", simulate, methods=["POST"],
                 name="sensor_simulate", policy="control",
                 schemas={**_SENSOR, "SensorSimulateBody": SCHEMAS["SensorSimulateBody"]},
                 openapi={"summary": "Set a simulated reading", "tags": ["sensors"],
                          "description": "Simulated board only (404 on real hardware).",
                          "parameters": [SENSOR_PARAM],
                          "requestBody": json_body("SensorSimulateBody"),
                          "responses": {"200": json_response(ref("Sensor"),
                                                             "The sensor after the read"),
                                        **problems(WHY, 404, 413, 415, 422)}}),
    ]
