"""The API contract: ``/openapi.json`` for client generators, ``/docs`` for people.

The spec is written here, next to nothing else, and a test holds it equal to the app's
routes (every route documented, every documented path routed). ``/docs`` renders the same
spec on the server as plain HTML, so it works offline on a LAN with no script or CDN and
weighs a few kilobytes on a Pi Zero.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinpanel import __version__
from pinpanel.config import PULSE_MAX_MS

PIN_PARAM = {"name": "pin", "in": "path", "required": True,
             "description": "BCM number (e.g. 18) or the pin's id (e.g. gpio18)",
             "schema": {"type": "string"}}
JSON_CT_HEADER = {"name": "Content-Type", "in": "header", "required": True,
                  "description": "Must be application/json (the tutorial's rule)",
                  "schema": {"type": "string", "enum": ["application/json"]}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    why = {400: "Malformed request", 401: "Missing or bad credentials",
           403: "Credentials lack the scope", 404: "Unknown pin",
           409: "The pin's mode does not allow it", 413: "Body too large",
           415: "Body is not JSON", 422: "Body has the wrong shape or values",
           503: "Hardware or storage failed; nothing was changed"}
    return {str(s): {"description": why[s], "content": {"application/problem+json": {
        "schema": _ref("Problem")}}} for s in statuses}


SWITCH_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 503)
READ_ERRORS = (401, 403)

SCHEMAS: dict[str, Any] = {
    "Pin": {
        "type": "object",
        "required": ["pin", "id", "name", "mode", "state", "active_low", "seq", "changed_at"],
        "properties": {
            "pin": {"type": "integer", "minimum": 0, "maximum": 27, "description": "BCM number"},
            "id": {"type": "string", "description": "URL slug"},
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["output", "input"]},
            "state": {"type": "boolean", "description": "Logical state (active_low applied)"},
            "active_low": {"type": "boolean"},
            "seq": {"type": "integer", "description": "Sequence number of the pin's last change"},
            "changed_at": {"type": ["string", "null"], "format": "date-time"},
            "pulse_until": {"type": "string", "format": "date-time",
                            "description": "Present while a pulse or auto-off is pending"},
        },
    },
    "PinList": {"type": "object", "required": ["pins", "seq"], "properties": {
        "pins": {"type": "array", "items": _ref("Pin")},
        "seq": {"type": "integer", "description": "Last committed sequence number"}}},
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                               "status": {"type": "integer"}, "detail": {"type": "string"}}},
    "HistoryItem": {
        "type": "object",
        "required": ["seq", "at", "pin", "id", "old", "new", "cause", "actor", "client"],
        "properties": {
            "seq": {"type": "integer", "description": "Sequence number (gapless, never reused)"},
            "at": {"type": "string", "format": "date-time", "description": "UTC, milliseconds"},
            "pin": {"type": "integer", "description": "BCM number"},
            "id": {"type": "string"},
            "old": {"type": ["boolean", "null"],
                    "description": "State before; null for a pin's first record"},
            "new": {"type": "boolean"},
            "cause": {"type": "string", "description": "api, form, pulse, input, interlock, "
                                                        "startup, shutdown, mqtt..."},
            "actor": {"type": "string", "description": "Token or user name, anonymous, mqtt, "
                                                        "pulse, input or system"},
            "client": {"type": ["string", "null"], "description": "Client address"},
        },
    },
    "HistoryPage": {"type": "object", "required": ["items", "next"], "properties": {
        "items": {"type": "array", "items": _ref("HistoryItem"),
                  "description": "Newest first"},
        "next": {"type": ["string", "null"],
                 "description": "Pass as cursor for the next (older) page; null on the last"}}},
    "System": {"type": "object", "properties": {
        "version": {"type": "string"}, "backend": {"type": "string"},
        "simulated": {"type": "boolean"}, "board": {"type": ["string", "null"]},
        "pins": {"type": "integer"}, "seq": {"type": "integer"}, "auth": {"type": "boolean"}}},
    "StateBody": {"type": "object", "required": ["state"], "additionalProperties": False,
                  "properties": {"state": {"type": "boolean"}}},
    "PulseBody": {"type": "object", "additionalProperties": False, "properties": {
        "ms": {"type": "integer", "minimum": 1, "maximum": PULSE_MAX_MS}}},
    "SimulateBody": {"type": "object", "required": ["level"], "additionalProperties": False,
                     "properties": {"level": {"type": "string", "enum": ["high", "low"]}}},
    "CompatList": {"type": "object", "additionalProperties": {"type": "boolean"},
                   "description": "BCM number (as a string) -> logical state"},
    "CompatError": {"type": "object", "required": ["Error"],
                    "properties": {"Error": {"type": "string"}}},
}


def _switch(summary: str, description: str, body: str | None = None,
            optional_body: bool = False, cause: str = "api") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "description": description, "tags": ["pins"],
        "parameters": [PIN_PARAM],
        "responses": {"200": _json(_ref("Pin"), f"The pin after the change (cause {cause})"),
                      **_problems(*SWITCH_ERRORS)},
    }
    if body:
        op["requestBody"] = {"required": not optional_body,
                             "content": {"application/json": {"schema": _ref(body)}}}
    return op


def build_spec() -> dict[str, Any]:
    """The whole API as an OpenAPI 3.1 document."""
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "Liveness", "tags": ["system"], "security": [],
                             "responses": {"200": _json({"type": "object", "properties": {
                                 "status": {"const": "ok"}}}, "The server is up")}}},
        "/api/v1/history": {"get": {
            "summary": "Audit history", "tags": ["history"],
            "description": "Committed changes, newest first, paged with a cursor. Filters "
                           "combine; since is inclusive, until exclusive. Unknown or "
                           "repeated parameters are refused (422).",
            "parameters": [
                {"name": "pin", "in": "query", "required": False, "explode": True,
                 "description": "BCM number or pin id; repeat for several pins",
                 "schema": {"type": "array", "items": {"type": "string"}}},
                {"name": "since", "in": "query", "required": False,
                 "description": "RFC 3339 date-time with offset (inclusive)",
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "until", "in": "query", "required": False,
                 "description": "RFC 3339 date-time with offset (exclusive)",
                 "schema": {"type": "string", "format": "date-time"}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}},
                {"name": "cursor", "in": "query", "required": False,
                 "description": "The next value of the previous page (opaque)",
                 "schema": {"type": "string"}},
            ],
            "responses": {"200": _json(_ref("HistoryPage"), "One page of history"),
                          **_problems(*READ_ERRORS, 404, 422)}}},
        "/api/v1/system": {"get": {"summary": "Backend, version and board", "tags": ["system"],
                                   "responses": {"200": _json(_ref("System"), "System facts"),
                                                 **_problems(*READ_ERRORS)}}},
        "/api/v1/pins": {"get": {"summary": "Every pin", "tags": ["pins"],
                                 "responses": {"200": _json(_ref("PinList"), "All pins"),
                                               **_problems(*READ_ERRORS)}}},
        "/api/v1/pins/{pin}": {
            "get": {"summary": "One pin", "tags": ["pins"], "parameters": [PIN_PARAM],
                    "responses": {"200": _json(_ref("Pin"), "The pin"),
                                  **_problems(*READ_ERRORS, 404)}},
            "put": _switch("Set the state", "Switch an output on or off.", "StateBody"),
        },
        "/api/v1/pins/{pin}/on": {"post": _switch("Switch on", "Interlocked pins go off first.")},
        "/api/v1/pins/{pin}/off": {"post": _switch("Switch off", "Cancels a pending pulse.")},
        "/api/v1/pins/{pin}/toggle": {"post": _switch("Toggle", "On if off, off if on.")},
        "/api/v1/pins/{pin}/pulse": {"post": _switch(
            "Pulse", "On now, off after ms (default: the pin's pulse_ms, else 500). The request "
            "returns at once; a later command on the pin cancels the turn-off.",
            "PulseBody", optional_body=True, cause="pulse")},
        "/api/v1/pins/{pin}/simulate": {"post": _switch(
            "Drive a simulated input", "Simulated board only (404 on real pins): drive an "
            "input's line high or low as a button would.", "SimulateBody", cause="input")},
        "/api/list": {"get": {
            "summary": "Tutorial: every pin's state", "tags": ["tutorial"],
            "parameters": [JSON_CT_HEADER],
            "responses": {"200": _json(_ref("CompatList"), 'e.g. {"18": false}'),
                          "400": _json(_ref("CompatError"), "Not a JSON request"),
                          **_problems(*READ_ERRORS)}}},
        "/api/toggle/{pin}": {"post": {
            "summary": "Tutorial: toggle a pin", "tags": ["tutorial"],
            "parameters": [{**PIN_PARAM, "description": "BCM number"}, JSON_CT_HEADER],
            "responses": {"200": _json({"type": "object", "properties": {
                "Success": {"const": True}}}, '{"Success": true}'),
                "400": _json(_ref("CompatError"), "Not JSON, or unknown pin"),
                **_problems(401, 403)}}},
        "/toggle": {"post": {
            "summary": "Tutorial: the page's form post", "tags": ["tutorial"],
            "parameters": [{"name": "pin", "in": "query", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"303": {"description": "Back to the page"},
                          "400": _json(_ref("CompatError"), "Unknown pin")}}},
        "/": {"get": {"summary": "The page", "tags": ["page"],
                      "responses": {"200": {"description": "HTML",
                                            "content": {"text/html": {}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "tags": ["system"],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/docs": {"get": {"summary": "This document for people", "tags": ["system"],
                          "responses": {"200": {"description": "HTML",
                                                "content": {"text/html": {}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "pinpanel", "version": __version__,
                 "description": "A Raspberry Pi's GPIO pins over HTTP. {pin} is a BCM number "
                                "or a pin id. Errors are RFC 9457 problem documents."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


_extensions: list[Any] = []


def extend(hook: Any) -> None:
    """Let another web module add its paths and schemas (called at import time)."""
    _extensions.append(hook)


def spec() -> dict[str, Any]:
    document = build_spec()
    for hook in _extensions:
        hook(document)
    return document


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    from pinpanel.web.pages import TEMPLATES, page_context

    document = request.app.state.openapi
    operations = [
        {"method": method.upper(), "path": path, **op}
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    return TEMPLATES.TemplateResponse(
        request, "docs.html", page_context(request, spec=document, operations=operations))


def routes() -> list[Route]:
    return [
        Route("/openapi.json", openapi_json, methods=["GET"], name="openapi"),
        Route("/docs", docs, methods=["GET"], name="docs"),
    ]
