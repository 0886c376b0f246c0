"""API v1: JSON over the board core, errors as problem documents.

``{pin}`` is the BCM number or the pin's id everywhere. Every switching route answers with
the pin as committed by that change (its ``seq`` is the one the event stream and MQTT carry).
Reads answer with the pins as committed too: a change still on its way to disk is not
shown until it is there, so a pin's ``state`` and ``seq`` always belong to the same change.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel import __version__
from pinpanel.auth import SEE
from pinpanel.board import ACTIONS, Action
from pinpanel.config import FADE_MAX_MS, PULSE_MAX_MS
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.context import actor_of, board_of, require, visible_pins
from pinpanel.web.openapi import json_body, json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.replies import BodyCache, JsonEndpoint, Reply, encode
from pinpanel.web.routing import ApiRoute


def list_pins_endpoint() -> JsonEndpoint:
    """``GET /api/v1/pins``, its body encoded once per committed change (and viewer)."""
    cache = BodyCache()

    async def list_pins(request: Request) -> Reply:
        board = board_of(request)
        shown = visible_pins(request)
        key = board.views_key()
        return 200, cache.get(key and (board, shown, key), lambda: {
            "pins": [v.as_json() for v in board.views() if shown is None or v.pin in shown],
            "seq": board.hub.last_seq})

    return JsonEndpoint(list_pins)


async def get_pin(request: Request) -> Response:
    """The pin as committed: the state and ``seq`` of its last committed change."""
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])
    require(request, SEE, pin.pin)
    return JSONResponse(board.view(pin.pin).as_json())


async def put_pin(request: Request) -> Response:
    """``{"state": b}`` for any output, ``{"level": x}`` for pwm, ``{"angle": a}`` for a servo.

    The value's range is the board's check (422 out of range, 409 for the wrong kind of pin).
    """
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])  # 404 before the body
    body = expect_object(await read_json(request),
                         {"state": bool, "level": object, "angle": object})
    if len(body) != 1:
        raise Problem(422, "send exactly one of state, level (pwm) or angle (servo)")
    doing = "level" if "level" in body else "angle" if "angle" in body else \
        "on" if body["state"] else "off"
    require(request, doing, pin.pin)
    actor = actor_of(request, "api")
    if "level" in body:
        view = await board.set_level(pin, body["level"], actor)
    elif "angle" in body:
        view = await board.set_angle(pin, body["angle"], actor)
    else:
        action: Action = "on" if body["state"] else "off"
        view = await board.command(pin, action, actor)
    return JSONResponse(view.as_json())


async def fade_pin(request: Request) -> Response:
    """Commit the target level now; the hardware moves there in steps over ``ms``."""
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])
    require(request, "level", pin.pin)
    body = expect_object(await read_json(request), {"level": object, "ms": int},
                         required=("level", "ms"))
    view = await board.set_level(pin, body["level"], actor_of(request, "api"),
                                 fade_ms=body["ms"])
    return JSONResponse(view.as_json())


async def switch_pin(request: Request) -> Reply:
    action = request.path_params["action"]
    if action not in ACTIONS:  # the route pattern already limits it; keep the core honest
        raise Problem(404, f"unknown action {action!r}")
    body = await read_json(request, optional=True)
    if body is not None:
        expect_object(body, {})
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])  # 404 before anything else
    require(request, action, pin.pin)
    view = await board.command(pin, action, actor_of(request, "api"))
    return 200, encode(view.as_json())


async def pulse_pin(request: Request) -> Response:
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])
    require(request, "pulse", pin.pin)
    body = await read_json(request, optional=True)
    ms: int | None = None
    if body is not None:
        ms = expect_object(body, {"ms": int}).get("ms")
        if ms is not None and not 1 <= ms <= PULSE_MAX_MS:
            raise Problem(422, f"ms must be between 1 and {PULSE_MAX_MS}, got {ms}")
    view = await board.pulse(pin, ms, actor_of(request, "pulse"))
    return JSONResponse(view.as_json())


async def simulate_input(request: Request) -> Response:
    board = board_of(request)
    if not board.simulated:
        raise Problem(404, "inputs can be driven by hand only on the simulated board")
    pin = board.resolve(request.path_params["pin"])
    require(request, "simulate", pin.pin)
    body = expect_object(await read_json(request), {"level": str}, required=("level",))
    level = body["level"]
    if level not in ("high", "low"):
        raise Problem(422, f"level must be 'high' or 'low', got {level!r}")
    view = await board.simulate(pin, level == "high")
    return JSONResponse(view.as_json())


def system_info(request: Request) -> dict[str, Any]:
    board = board_of(request)
    info = board.hardware.info
    return {"version": __version__, "backend": info.name, "simulated": info.simulated,
            "board": info.board, "chip": info.chip.as_json() if info.chip else None,
            "pins": len(board.config.pins), "seq": board.hub.last_seq,
            "auth": request.app.state.auth_enabled,
            "subscribers": board.hub.subscriber_count}


async def system(request: Request) -> Response:
    return JSONResponse(system_info(request))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# -- the routes and their document -------------------------------------------------------

PIN_PARAM = {"name": "pin", "in": "path", "required": True,
             "description": "BCM number (e.g. 18) or the pin's id (e.g. gpio18)",
             "schema": {"type": "string"}, "example": "18"}
WHY = {400: "Malformed request", 404: "Unknown pin", 409: "The pin's mode does not allow it",
       413: "Body too large", 415: "Body is not JSON",
       422: "Body has the wrong shape or values",
       503: "Hardware or storage failed; nothing was changed"}
SWITCH_ERRORS = (400, 404, 409, 413, 415, 422, 503)

PIN_SCHEMA = {
    "type": "object",
    "required": ["pin", "id", "name", "mode", "state", "active_low", "seq", "changed_at"],
    "properties": {
        "pin": {"type": "integer", "minimum": 0, "maximum": 27, "description": "BCM number"},
        "id": {"type": "string", "description": "URL slug"},
        "name": {"type": "string"},
        "mode": {"type": "string", "enum": ["output", "input", "pwm", "servo"]},
        "state": {"type": "boolean", "description": "Logical state (active_low applied)"},
        "active_low": {"type": "boolean"},
        "seq": {"type": "integer", "description": "Sequence number of the pin's last change"},
        "changed_at": {"type": ["string", "null"], "format": "date-time"},
        "pulse_until": {"type": "string", "format": "date-time",
                        "description": "Present while a pulse or auto-off is pending"},
        "level": {"type": "number", "minimum": 0, "maximum": 1,
                  "description": "pwm pins: the level (state is level > 0)"},
        "angle": {"type": ["number", "null"],
                  "description": "servos: the angle; null when detached (state false)"},
        "fade_until": {"type": "string", "format": "date-time",
                       "description": "pwm pins: present while the hardware fades towards "
                                      "level"},
    },
}
PIN = {"Pin": PIN_SCHEMA}
SCHEMAS: dict[str, Any] = {
    "PinList": {"type": "object", "required": ["pins", "seq"], "properties": {
        "pins": {"type": "array", "items": ref("Pin")},
        "seq": {"type": "integer", "description": "Last committed sequence number"}}},
    "System": {"type": "object", "properties": {
        "version": {"type": "string"}, "backend": {"type": "string"},
        "simulated": {"type": "boolean"}, "board": {"type": ["string", "null"]},
        "chip": {"type": ["object", "null"], "description":
                 "The GPIO chip lgpio drives and how [gpio] chip chose it (null: simulated "
                 "or a register-based backend)", "properties": {
                     "name": {"type": "string"}, "path": {"type": "string"},
                     "label": {"type": ["string", "null"]},
                     "lines": {"type": ["integer", "null"]},
                     "chosen_by": {"type": "string",
                                   "enum": ["auto", "label", "number", "path"]},
                     "setting": {"type": "string"}}},
        "pins": {"type": "integer"}, "seq": {"type": "integer"}, "auth": {"type": "boolean"},
        "subscribers": {"type": "integer",
                        "description": "Event stream clients connected now"}}},
    "StateBody": {"type": "object", "additionalProperties": False, "minProperties": 1,
                  "maxProperties": 1, "description": "Exactly one of state, level, angle",
                  "properties": {
                      "state": {"type": "boolean"},
                      "level": {"type": "number", "minimum": 0, "maximum": 1,
                                "description": "pwm pins; below min_level is raised to it"},
                      "angle": {"type": ["number", "null"],
                                "description": "servos, within min_angle..max_angle; null "
                                               "detaches"}}},
    "FadeBody": {"type": "object", "required": ["level", "ms"], "additionalProperties": False,
                 "properties": {"level": {"type": "number", "minimum": 0, "maximum": 1},
                                "ms": {"type": "integer", "minimum": 0,
                                       "maximum": FADE_MAX_MS}}},
    "PulseBody": {"type": "object", "additionalProperties": False, "properties": {
        "ms": {"type": "integer", "minimum": 1, "maximum": PULSE_MAX_MS}}},
    "SimulateBody": {"type": "object", "required": ["level"], "additionalProperties": False,
                     "properties": {"level": {"type": "string", "enum": ["high", "low"]}}},
}


def _switch(summary: str, description: str, body: str | None = None,
            optional_body: bool = False, cause: str = "api") -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "description": description, "tags": ["pins"],
        "parameters": [PIN_PARAM],
        "responses": {"200": json_response(ref("Pin"), f"The pin after the change (cause {cause})"),
                      **problems(WHY, *SWITCH_ERRORS)},
    }
    if body:
        op["requestBody"] = json_body(body, required=not optional_body)
    return op


#: How pins are read, for the API document.
READ_AS_COMMITTED = (
    "As committed: each pin's state and seq are those of its last committed change. A "
    "change still being written to disk shows only once it is durable, with its own seq, "
    "so a state is never paired with another change's seq.")


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/healthz", healthz, methods=["GET"], name="healthz", policy="open",
                 openapi={"summary": "Liveness", "tags": ["system"], "responses": {
                     "200": json_response({"type": "object", "properties": {
                         "status": {"const": "ok"}}}, "The server is up")}}),
        ApiRoute("/api/v1/system", system, methods=["GET"], name="system", policy="read",
                 schemas={"System": SCHEMAS["System"]},
                 openapi={"summary": "Backend, version and board", "tags": ["system"],
                          "responses": {"200": json_response(ref("System"), "System facts")}}),
        ApiRoute("/api/v1/pins", list_pins_endpoint(), methods=["GET"], name="pins", policy="read",
                 pin_scoped=True,
                 schemas={**PIN, "PinList": SCHEMAS["PinList"]},
                 openapi={"summary": "Every pin", "tags": ["pins"],
                          "description": READ_AS_COMMITTED,
                          "responses": {"200": json_response(ref("PinList"), "All pins")}}),
        ApiRoute("/api/v1/pins/{pin}", get_pin, methods=["GET"], name="pin", policy="read",
                 pin_scoped=True,
                 schemas=PIN,
                 openapi={"summary": "One pin", "tags": ["pins"], "parameters": [PIN_PARAM],
                          "description": READ_AS_COMMITTED,
                          "responses": {"200": json_response(ref("Pin"), "The pin"),
                                        **problems(WHY, 404)}}),
        ApiRoute("/api/v1/pins/{pin}", put_pin, methods=["PUT"], name="pin_put",
                 policy="control",
                 pin_scoped=True, schemas={**PIN, "StateBody": SCHEMAS["StateBody"]},
                 openapi=_switch("Set the state, level or angle",
                                 "Switch an output on or off, set a pwm pin's level or turn a "
                                 "servo (null detaches it). On a pwm pin state true brings "
                                 "back the last level above zero.", "StateBody")),
        ApiRoute("/api/v1/pins/{pin}/fade", fade_pin, methods=["POST"], name="pin_fade",
                 policy="control",
                 pin_scoped=True, schemas={**PIN, "FadeBody": SCHEMAS["FadeBody"]},
                 openapi=_switch(
                     "Fade", "pwm pins: the target level is committed at once (the answer "
                     "and the event carry it, with fade_until) and the hardware moves there "
                     "in steps over ms. The request returns at once; any later command on "
                     "the pin ends the fade.", "FadeBody")),
        ApiRoute("/api/v1/pins/{pin}/pulse", pulse_pin, methods=["POST"], name="pin_pulse",
                 policy="control",
                 pin_scoped=True, schemas={**PIN, "PulseBody": SCHEMAS["PulseBody"]},
                 openapi=_switch(
                     "Pulse", "On now, off after ms (default: the pin's pulse_ms, else 500). "
                     "The request returns at once; a later command on the pin cancels the "
                     "turn-off.", "PulseBody", optional_body=True, cause="pulse")),
        ApiRoute("/api/v1/pins/{pin}/simulate", simulate_input, methods=["POST"],
                 name="pin_simulate", policy="control", pin_scoped=True,
                 schemas={**PIN, "SimulateBody": SCHEMAS["SimulateBody"]},
                 openapi=_switch(
                     "Drive a simulated input", "Simulated board only (404 on real pins): "
                     "drive an input's line high or low as a button would.", "SimulateBody",
                     cause="input")),
        # One handler for on, off and toggle; the document spells them out as three paths.
        ApiRoute("/api/v1/pins/{pin}/{action:str}", JsonEndpoint(switch_pin), methods=["POST"],
                 name="pin_switch", policy="control", pin_scoped=True, schemas=PIN, openapi_paths={
                     "/api/v1/pins/{pin}/on": _switch("Switch on",
                                                      "Interlocked pins go off first."),
                     "/api/v1/pins/{pin}/off": _switch("Switch off",
                                                       "Cancels a pending pulse."),
                     "/api/v1/pins/{pin}/toggle": _switch("Toggle", "On if off, off if on."),
                 }),
    ]
