"""The hub over HTTP: its devices, its event stream, fleet-wide commands and its page.

Each route is declared here once, as data (path, endpoint, methods, name, policy and its
OpenAPI operation); the runtime turns them into the web app's ``ApiRoute`` objects, so they
pass the same security layer (auth, CSRF, host check) and land in the same API document as
every other route, while this package never imports the web adapter (siblings never import
each other).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from pinpanel.hub import page
from pinpanel.hub.core import CommandError, Hub

#: A fleet command names up to 10,000 pins: larger than a pin command's body limit.
MAX_BODY = 1024 * 1024
KEEPALIVE_S = 15.0


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status,
                         "detail": detail}, status_code=status,
                        media_type="application/problem+json")


def routes(hub: Hub, csrf_of: Callable[[Request], str]) -> list[dict[str, Any]]:
    """The hub's routes as ``ApiRoute`` keyword arguments."""

    async def devices(request: Request) -> Response:
        return JSONResponse(hub.snapshot())

    async def commands(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _problem(415, "Unsupported Media Type", "send application/json")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _problem(413, "Payload Too Large", f"at most {MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            return _problem(400, "Bad Request", "the body is not valid JSON")
        try:
            steps, word, timeout_s = hub.plan(data)
        except CommandError as exc:
            return _problem(422, "Unprocessable Content", str(exc))
        outcomes = await hub.execute(steps, word, timeout_s)
        rows = [o.as_json() for o in outcomes]
        counts = {s: sum(r["status"] == s for r in rows)
                  for s in ("confirmed", "refused", "timeout", "not_sent")}
        return JSONResponse({"action": data["action"], "timeout_ms": round(timeout_s * 1000),
                             "counts": counts, "results": rows})

    async def stream(request: Request) -> Response:
        first, queue = hub.subscribe()

        async def frames() -> AsyncIterator[bytes]:
            closing = asyncio.ensure_future(hub.closing.wait())
            try:
                yield b"retry: 2000\n\n" + first
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getter, closing}, timeout=KEEPALIVE_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        if closing in done:
                            return
                        yield b": keep-alive\n\n"
                        continue
                    item = getter.result()
                    if item is None:
                        return
                    yield item
            finally:
                closing.cancel()
                hub.unsubscribe(queue)

        return StreamingResponse(frames(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    async def hub_page(request: Request) -> Response:
        return Response(page.html(csrf_of(request)), media_type="text/html",
                        headers={"Cache-Control": "no-store"})

    async def hub_js(request: Request) -> Response:
        return Response(page.SCRIPT, media_type="text/javascript",
                        headers={"Cache-Control": "no-cache"})

    async def hub_css(request: Request) -> Response:
        return Response(page.STYLE, media_type="text/css",
                        headers={"Cache-Control": "no-cache"})

    return [
        {"path": "/api/v1/hub/devices", "endpoint": devices, "methods": ["GET"],
         "name": "hub_devices", "policy": "read", "openapi": DEVICES_DOC, "schemas": SCHEMAS},
        {"path": "/api/v1/hub/stream", "endpoint": stream, "methods": ["GET"],
         "name": "hub_stream", "policy": "read", "openapi": STREAM_DOC},
        {"path": "/api/v1/hub/commands", "endpoint": commands, "methods": ["POST"],
         "name": "hub_commands", "policy": "control", "openapi": COMMANDS_DOC,
         "schemas": SCHEMAS},
        {"path": "/hub", "endpoint": hub_page, "methods": ["GET"], "name": "hub_page",
         "policy": "read"},
        {"path": "/hub/hub.js", "endpoint": hub_js, "methods": ["GET"], "name": "hub_js",
         "policy": "open"},
        {"path": "/hub/hub.css", "endpoint": hub_css, "methods": ["GET"], "name": "hub_css",
         "policy": "open"},
    ]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    why = {400: "Malformed JSON", 413: "Body too large", 415: "Body is not JSON",
           422: "The command names no Pi, an unknown Pi or a bad action"}
    return {str(s): {"description": why[s], "content": {"application/problem+json": {
        "schema": _ref("Problem")}}} for s in statuses}


SCHEMAS: dict[str, Any] = {
    "HubDevice": {"type": "object", "required": ["device_id", "status", "online", "pins"],
                  "properties": {
                      "device_id": {"type": "string"}, "base": {"type": "string"},
                      "name": {"type": "string"}, "version": {"type": "string"},
                      "url": {"type": "string", "description": "The Pi's own page"},
                      "status": {"enum": ["online", "offline", "unknown"]},
                      "online": {"type": "boolean"},
                      "last_seen": {"type": ["string", "null"]},
                      "controllable": {"type": "boolean",
                                       "description": "Heard on MQTT (else found on mDNS)"},
                      "sources": {"type": "array", "items": {"type": "string"}},
                      "pins": {"type": "array", "items": {"type": "object"}},
                      "sensors": {"type": "array", "items": {"type": "object"}},
                      "groups": {"type": "array", "items": {"type": "object"}}}},
    "HubDevices": {"type": "object", "required": ["connected", "devices"], "properties": {
        "connected": {"type": "boolean", "description": "The hub's broker connection"},
        "devices": {"type": "array", "items": _ref("HubDevice")}}},
    "HubCommand": {"type": "object", "required": ["action"], "properties": {
        "action": {"enum": ["on", "off", "toggle"]},
        "group": {"type": "string", "description": "A group id, on every Pi that has it"},
        "devices": {"type": "array", "items": {"type": "string"},
                    "description": "With group: only these Pis"},
        "targets": {"type": "array", "items": {
            "type": "object", "required": ["device", "pin"],
            "properties": {"device": {"type": "string"}, "pin": {"type": "string"}}}},
        "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 60000}}},
    "HubResult": {"type": "object", "required": ["device", "target", "status"], "properties": {
        "device": {"type": "string"}, "target": {"type": "string"},
        "status": {"enum": ["confirmed", "refused", "timeout", "not_sent"]},
        "ms": {"type": ["number", "null"]}, "seq": {"type": ["integer", "null"]},
        "reason": {"type": ["string", "null"]}, "detail": {"type": ["string", "null"]},
        "pins": {"type": "array", "items": {"type": "object"}}}},
    "HubResults": {"type": "object", "required": ["results", "counts"], "properties": {
        "action": {"type": "string"}, "timeout_ms": {"type": "integer"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "results": {"type": "array", "items": _ref("HubResult")}}},
}

DEVICES_DOC = {
    "summary": "Every pinpanel the hub hears on the broker",
    "tags": ["hub"],
    "responses": {"200": {"description": "Devices, online or not, with their pins",
                          "content": {"application/json": {"schema": _ref("HubDevices")}}}},
}
STREAM_DOC = {
    "summary": "The hub's devices, live (Server-Sent Events)",
    "description": "One `snapshot` event (as GET /api/v1/hub/devices), then a `device` "
                   "event with the whole device each time it changes (coalesced), and a "
                   "`hub` event ({connected}) when the hub's broker connection changes.",
    "tags": ["hub"],
    "responses": {"200": {"description": "An event stream",
                          "content": {"text/event-stream": {"schema": {"type": "string"}}}}},
}
COMMANDS_DOC = {
    "summary": "Switch pins on many Pis, each confirmed by its Pi",
    "description": "By group id across every Pi that has it, or by a list of "
                   "{device, pin}. Answers when every Pi has answered or timed out.",
    "tags": ["hub"],
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": _ref("HubCommand")}}},
    "responses": {"200": {"description": "One row per Pi (and pin)",
                          "content": {"application/json": {"schema": _ref("HubResults")}}},
                  **_problems(400, 413, 415, 422)},
}
