"""Schedules over HTTP: list and read them (read scope), create, edit, delete (admin).

Each schedule is shown with its ``next_run`` (UTC), ``next`` in words ("today 19:42
(sunset)"), what a run ``does`` and where it comes from (``config`` or ``api``). The work
is :class:`~pinpanel.automation.schedules.ScheduleBook`'s; the page's form uses it too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.automation.schedules import ScheduleBook
from pinpanel.web.bodies import read_json
from pinpanel.web.context import actor_of, board_of
from pinpanel.web.openapi import json_body, json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute


def book_of(request: Request) -> ScheduleBook:
    book: ScheduleBook | None = getattr(request.app.state, "schedules", None)
    if book is None:
        raise Problem(503, "schedules are not running in this server")
    return book


def now_of(book: ScheduleBook) -> datetime:
    clock = book.scheduler.clock if book.scheduler is not None else None
    return datetime.fromtimestamp(clock.time(), UTC) if clock else datetime.now(UTC)


def listing(request: Request) -> dict[str, Any]:
    book = book_of(request)
    board = board_of(request)
    now = now_of(book)
    place = book.place
    return {"schedules": [book.as_json(board, e, now) for e in
                          (book.entry(s.id) for s in book.schedules())],
            "location": {"latitude": place.latitude, "longitude": place.longitude,
                         "timezone": place.timezone, "located": book.config.located}}


async def list_schedules(request: Request) -> Response:
    return JSONResponse(listing(request))


async def get_schedule(request: Request) -> Response:
    book = book_of(request)
    entry = book.entry(request.path_params["schedule"])
    return JSONResponse(book.as_json(board_of(request), entry, now_of(book)))


async def create_schedule(request: Request) -> Response:
    book = book_of(request)
    entry = await book.create(await read_json(request), actor_of(request, "api").name)
    return JSONResponse(book.as_json(board_of(request), entry, now_of(book)), status_code=201)


async def update_schedule(request: Request) -> Response:
    book = book_of(request)
    entry = await book.update(request.path_params["schedule"], await read_json(request),
                              actor_of(request, "api").name)
    return JSONResponse(book.as_json(board_of(request), entry, now_of(book)))


async def delete_schedule(request: Request) -> Response:
    book = book_of(request)
    await book.delete(request.path_params["schedule"], actor_of(request, "api").name)
    return Response(status_code=204)


# -- the document ------------------------------------------------------------------------

WHY = {400: "Malformed request", 404: "Unknown schedule",
       409: "The id is taken, or the schedule is the config file's (only enabled changes)",
       413: "Body too large", 415: "Body is not JSON",
       422: "The schedule is invalid (every problem is listed)",
       503: "Storage failed; nothing was changed"}
PARAM = {"name": "schedule", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The schedule's id", "example": "porch-on"}
SPEC_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"}, "name": {"type": "string"},
    "at": {"type": "string", "description": "07:30, sunset-15m, sunrise+10m, dusk, dawn"},
    "days": {"type": "array", "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat",
                                                 "sun"]}},
    "cron": {"type": "string", "description": "Five fields, local time: */15 6-22 * * *"},
    "action": {"enum": ["on", "off", "toggle", "pulse"]},
    "ms": {"type": "integer", "description": "pulse length (0: the pin's pulse_ms)"},
    "pins": {"type": "array", "items": {"type": ["string", "integer"]}},
    "group": {"type": "string"}, "scene": {"type": "string"},
    "enabled": {"type": "boolean"},
}
SCHEMAS: dict[str, Any] = {
    "ScheduleBody": {"type": "object", "properties": SPEC_PROPERTIES,
                     "description": "at or cron; pins, group or scene"},
    "Schedule": {"type": "object", "properties": {
        **SPEC_PROPERTIES,
        "source": {"enum": ["config", "api"]},
        "next_run": {"type": ["string", "null"], "format": "date-time"},
        "next": {"type": "string", "description": "e.g. today 19:42 (sunset)"},
        "when": {"type": "string"}, "does": {"type": "string"},
        "last_run": {"type": ["string", "null"], "format": "date-time"}}},
    "ScheduleList": {"type": "object", "properties": {
        "schedules": {"type": "array", "items": ref("Schedule")},
        "location": {"type": "object"}}},
}
TAGS = ["automation"]


def routes() -> list[ApiRoute]:
    one = {"Schedule": SCHEMAS["Schedule"]}
    body = {**one, "ScheduleBody": SCHEMAS["ScheduleBody"]}
    return [
        ApiRoute("/api/v1/schedules", list_schedules, methods=["GET"], name="schedules",
                 policy="read", schemas={**one, "ScheduleList": SCHEMAS["ScheduleList"]},
                 openapi={"summary": "Every schedule with its next run", "tags": TAGS,
                          "responses": {"200": json_response(ref("ScheduleList"),
                                                             "The schedules")}}),
        ApiRoute("/api/v1/schedules", create_schedule, methods=["POST"],
                 name="schedule_create", policy="admin", schemas=body,
                 openapi={"summary": "Create a schedule", "tags": TAGS,
                          "requestBody": json_body("ScheduleBody"),
                          "responses": {"201": json_response(ref("Schedule"), "Created"),
                                        **problems(WHY, 400, 409, 413, 415, 422, 503)}}),
        ApiRoute("/api/v1/schedules/{schedule}", get_schedule, methods=["GET"],
                 name="schedule", policy="read", schemas=one,
                 openapi={"summary": "One schedule", "tags": TAGS, "parameters": [PARAM],
                          "responses": {"200": json_response(ref("Schedule"), "The schedule"),
                                        **problems(WHY, 404)}}),
        ApiRoute("/api/v1/schedules/{schedule}", update_schedule, methods=["PUT"],
                 name="schedule_update", policy="admin", schemas=body,
                 openapi={"summary": "Change a schedule (fields not given stay)",
                          "description": "A schedule from the config file takes only "
                          "{\"enabled\": ...}.", "tags": TAGS, "parameters": [PARAM],
                          "requestBody": json_body("ScheduleBody"),
                          "responses": {"200": json_response(ref("Schedule"), "Changed"),
                                        **problems(WHY, 400, 404, 409, 413, 415, 422, 503)}}),
        ApiRoute("/api/v1/schedules/{schedule}", delete_schedule, methods=["DELETE"],
                 name="schedule_delete", policy="admin",
                 openapi={"summary": "Delete a schedule made over the API", "tags": TAGS,
                          "parameters": [PARAM],
                          "responses": {"204": {"description": "Deleted"},
                                        **problems(WHY, 404, 409, 503)}}),
    ]
