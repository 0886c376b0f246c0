"""The tutorial's routes, kept as its readers and their apps use them.

``GET /api/list`` -> ``{"18": false, ...}`` and ``POST /api/toggle/<pin>`` ->
``{"Success": true}``, both refusing a request whose Content-Type is not JSON, with the
tutorial's ``{"Error": ...}`` bodies, now valid JSON; and the page's form post
``POST /toggle?pin=N``, answered with a redirect back to the page. A malformed pin is a
400 here, where the tutorial crashed with a 500.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Scope

from pinpanel.config import Config
from pinpanel.errors import PinError
from pinpanel.web.bodies import is_json_type
from pinpanel.web.context import actor_of, board_of, require, visible_pins
from pinpanel.web.openapi import json_response, ref
from pinpanel.web.replies import BodyCache, JsonEndpoint, Reply, encode, header
from pinpanel.web.routing import ApiRoute

ONLY_JSON = {"Error": "Only JSON requests accepted"}
INVALID_PIN = {"Error": "Invalid Pin Number"}


ONLY_JSON_BODY = encode(ONLY_JSON)
INVALID_PIN_BODY = encode(INVALID_PIN)
SUCCESS_BODY = encode({"Success": True})


def _json_request(scope: Scope) -> bool:
    """The tutorial's rule, read from the scope (the same test as ``bodies.is_json``)."""
    return is_json_type(header(scope, b"content-type"))


def api_list_endpoint() -> JsonEndpoint:
    """``GET /api/list``, its body encoded once per committed change (and viewer)."""
    cache = BodyCache()

    async def api_list(request: Request) -> Reply:
        if not _json_request(request.scope):
            return 400, ONLY_JSON_BODY
        shown = visible_pins(request)
        board = board_of(request)
        key = board.views_key()
        return 200, cache.get(key and (board, shown, key), lambda: {
            str(v.pin): v.state for v in board.views() if shown is None or v.pin in shown})

    return JsonEndpoint(api_list)


async def api_toggle(request: Request) -> Reply:
    if not _json_request(request.scope):
        return 400, ONLY_JSON_BODY
    ref = request.path_params["pin"]
    if not ref.isdecimal():
        return 400, INVALID_PIN_BODY
    try:
        board = board_of(request)
        pin = board.resolve(int(ref))
        require(request, "toggle", pin.pin)
        await board.command(pin, "toggle", actor_of(request, "api"))
    except PinError:
        return 400, INVALID_PIN_BODY
    return 200, SUCCESS_BODY


async def form_toggle(request: Request) -> Response:
    ref = request.query_params.get("pin", "")
    if not ref.isdecimal():
        return JSONResponse(INVALID_PIN, status_code=400)
    try:
        board = board_of(request)
        pin = board.resolve(int(ref))
        require(request, "toggle", pin.pin)
        await board.command(pin, "toggle", actor_of(request, "form"))
    except PinError:
        return JSONResponse(INVALID_PIN, status_code=400)
    return RedirectResponse(request.url_for("page").path, status_code=303)


async def form_pulse(request: Request) -> Response:
    """``POST /pulse?pin=N``: the page's Pulse button without JavaScript (a guest link that
    may only pulse a pin gets this form instead of Toggle)."""
    ref = request.query_params.get("pin", "")
    if not ref.isdecimal():
        return JSONResponse(INVALID_PIN, status_code=400)
    try:
        board = board_of(request)
        pin = board.resolve(int(ref))
        require(request, "pulse", pin.pin)
        await board.pulse(pin, None, actor_of(request, "pulse"))
    except PinError:
        return JSONResponse(INVALID_PIN, status_code=400)
    return RedirectResponse(request.url_for("page").path, status_code=303)


# -- the routes and their document -------------------------------------------------------

JSON_CT_HEADER = {"name": "Content-Type", "in": "header", "required": True,
                  "description": "Must be application/json (the tutorial's rule)",
                  "schema": {"type": "string", "enum": ["application/json"]}}
SCHEMAS: dict[str, Any] = {
    "CompatList": {"type": "object", "additionalProperties": {"type": "boolean"},
                   "description": "BCM number (as a string) -> logical state (a pwm "
                                  "pin: level > 0; a servo: attached)"},
    "CompatError": {"type": "object", "required": ["Error"],
                    "properties": {"Error": {"type": "string"}}},
}


def _outputs(config: Config) -> list[int]:
    """The pins the tutorial's toggles accept: any other number is its 400, by contract."""
    return [p.pin for p in config.pins if p.is_output]


def _toggle_doc(config: Config) -> dict[str, Any]:
    return {
        "summary": "Tutorial: toggle a pin", "tags": ["tutorial"],
        "parameters": [{"name": "pin", "in": "path", "required": True,
                        "description": "BCM number of a configured output",
                        "schema": {"type": "string",
                                   "enum": [str(bcm) for bcm in _outputs(config)]}},
                       JSON_CT_HEADER],
        "responses": {"200": json_response({"type": "object", "properties": {
            "Success": {"const": True}}}, '{"Success": true}'),
            "400": json_response(ref("CompatError"), "Not JSON, or not a configured output")}}


def _form_toggle_doc(config: Config) -> dict[str, Any]:
    return {
        "summary": "Tutorial: the page's form post", "tags": ["tutorial"],
        "parameters": [{"name": "pin", "in": "query", "required": True,
                        "description": "BCM number of a configured output",
                        "schema": {"type": "integer", "enum": _outputs(config)}}],
        "responses": {"303": {"description": "Back to the page"},
                      "400": json_response(ref("CompatError"), "Not a configured output")}}


def _form_pulse_doc(config: Config) -> dict[str, Any]:
    return {**_form_toggle_doc(config), "summary": "The page's Pulse form post (no script)"}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/api/list", api_list_endpoint(), methods=["GET"], name="compat_list",
                 policy="read", pin_scoped=True,
                 schemas=SCHEMAS, openapi={
                     "summary": "Tutorial: every pin's state", "tags": ["tutorial"],
                     "parameters": [JSON_CT_HEADER],
                     "responses": {"200": json_response(ref("CompatList"), 'e.g. {"18": false}'),
                                   "400": json_response(ref("CompatError"),
                                                        "Not a JSON request")}}),
        ApiRoute("/api/toggle/{pin}", JsonEndpoint(api_toggle), methods=["POST"],
                 name="compat_toggle", policy="control", pin_scoped=True, schemas=SCHEMAS,
                 openapi=_toggle_doc),
        ApiRoute("/toggle", form_toggle, methods=["POST"], name="form_toggle",
                 policy="control", pin_scoped=True, schemas=SCHEMAS,
                 openapi=_form_toggle_doc),
        ApiRoute("/pulse", form_pulse, methods=["POST"], name="form_pulse",
                 policy="control", pin_scoped=True, schemas=SCHEMAS, openapi=_form_pulse_doc),
    ]
