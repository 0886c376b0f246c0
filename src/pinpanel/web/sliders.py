"""The page's slider form: set a pwm pin's level or a servo's angle without JavaScript.

Each pwm pin and servo on the page has an ``<input type="range">`` in a plain form that posts
here (``application/x-www-form-urlencoded``, with the page's CSRF field like every other form)
and is answered with a redirect back to the page. With JavaScript, static/sliders.js sends the
same change through the API while the slider is dragged; either way the change takes the
board's one path, with cause ``form`` here.

A pwm slider runs 0-100 (percent, as people say "dim to 40 %"); a servo's runs over its
angles, and a second button detaches it. A plain output takes the same form (above zero is
on), so the form means one thing for every output.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pinpanel.config import Config
from pinpanel.web.bodies import media_type, read_body
from pinpanel.web.context import actor_of, board_of, require
from pinpanel.web.openapi import ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

FORM = "application/x-www-form-urlencoded"


def _number(text: str | None, what: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        raise Problem(422, f"{what} must be a number, got {text!r}") from None


async def form_value(request: Request) -> Response:
    board = board_of(request)
    pin = board.resolve(request.path_params["pin"])  # 404 before the body
    if media_type(request) != FORM:
        raise Problem(415, f"send the form as {FORM}")
    body = await read_body(request, request.app.state.max_body_bytes)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    # The one per-pin check (a guest link may hold only some of these), before the board.
    if pin.has_level:
        require(request, "level", pin.pin)
    elif pin.has_angle:
        require(request, "angle", pin.pin)
    else:
        require(request, "on" if _number(form.get("value"), "value") > 0 else "off", pin.pin)
    actor = actor_of(request, "form")
    if pin.has_level:
        await board.set_level(pin, _number(form.get("value"), "value") / 100, actor)
    elif pin.has_angle and "detach" in form:
        await board.set_angle(pin, None, actor)
    elif pin.has_angle:
        await board.set_angle(pin, _number(form.get("value"), "value"), actor)
    else:  # a plain output: any value above zero is on, as a level would be
        on = _number(form.get("value"), "value") > 0
        await board.command(pin, "on" if on else "off", actor)
    return RedirectResponse(request.url_for("page").path, status_code=303)


def doc(config: Config) -> dict[str, Any]:
    """The operation, with the configured outputs as the pin's values."""
    outputs = [str(p.pin) for p in config.pins if p.is_output]
    return {**DOC, "parameters": [{
        "name": "pin", "in": "path", "required": True,
        "description": "BCM number of a configured output (a pwm pin or servo, usually)",
        "schema": {"type": "string", **({"enum": outputs} if outputs else {})}}]}


DOC: dict[str, Any] = {
    "summary": "The page's slider form", "tags": ["page"],
    "description": "pwm pins: value is the level in percent (0-100); servos: value is the "
                   "angle, or a detach field detaches it; a plain output is on above zero. "
                   "Answers with a redirect to the page; with JavaScript the page uses "
                   "PUT /api/v1/pins/{pin} instead.",
    "requestBody": {"required": True, "content": {FORM: {"schema": ref("SliderForm")}}},
    "responses": {"303": {"description": "Back to the page"},
                  "404": {"description": "Unknown pin"},
                  "400": {"description": "Malformed request"},
                  "409": {"description": "An input"},
                  "413": {"description": "Body too large"},
                  "415": {"description": "Not a url-encoded form"},
                  "422": {"description": "Out of range"}},
}


SCHEMAS: dict[str, Any] = {"SliderForm": {
    "type": "object", "description": "The page's slider form (url-encoded)",
    "required": ["value"],
    "properties": {"value": {"type": "number",
                             "description": "pwm: level in percent; servo: angle"},
                   "detach": {"type": "string", "description": "servos: detach instead"},
                   "csrf_token": {"type": "string"}}}}


def routes() -> list[ApiRoute]:
    return [ApiRoute("/pins/{pin}/value", form_value, methods=["POST"], name="form_value",
                     policy="control", pin_scoped=True, openapi=doc, schemas=SCHEMAS)]
