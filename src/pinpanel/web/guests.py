"""Guest links and "add a phone", for admins: over the API and on the page.

A guest link is a login link (``/login?token=...``, the first-start flow: the link shows a
Sign in button, its POST opens a session, a GET never changes anything) whose token is
limited to chosen pins and actions and to a lifetime. It is a row of the tokens table of
kind ``guest``; its audit actor is ``guest:<name>``. Revoking it, or its expiry, ends it
and every session made from it at once (see :class:`pinpanel.auth.Keyring`).

``GET|POST /api/v1/guests``, ``DELETE /api/v1/guests/{name}``; the page ``/guests`` (plain
forms, no script needed) makes one, shows its link and QR code, lists and revokes them,
and makes a new full login link for another phone of the admin's own.

Guests see only their pins: no sensors, groups, scenes or settings (those routes are not
``pin_scoped``, so the security layer closes them to a limited principal).
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from pinpanel import auth, first_start
from pinpanel.config import Config
from pinpanel.errors import AuthError, PinError, TokenExistsError, TokenNotFoundError
from pinpanel.web.bodies import expect_object, read_body, read_json
from pinpanel.web.context import board_of
from pinpanel.web.openapi import html_response, json_body, json_response, problems, ref
from pinpanel.web.pages import TEMPLATES, page_context
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute
from pinpanel.web.security import Guard

NO_STORE = {"Cache-Control": "no-store"}
#: Lifetimes the page offers, in its order.
PAGE_LIFETIMES = (("1h", "an hour"), ("1d", "a day"), ("1w", "a week"),
                  ("never", "until revoked"))
#: What the page offers per pin (the API takes any of auth.PIN_ACTIONS and "switch").
PAGE_ACTIONS = (("switch", "on/off"), ("pulse", "pulse"), ("level", "level"))


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


def qr_svg(url: str) -> str:
    """The link as an inline SVG QR code (dark on light, with its quiet zone)."""
    import segno

    out = io.BytesIO()
    segno.make(url, error="l").save(out, kind="svg", scale=4, border=4, xmldecl=False,
                                    svgns=True, dark="#000", light="#fff")
    return out.getvalue().decode()


def pin_refs(config: Config) -> list[str]:
    """What a grant may name: each configured pin's id and BCM number."""
    return [ref_ for pin in config.pins for ref_ in (pin.id, str(pin.pin))]


#: What a grant's actions may be, for the document.
ACTION_ENUM = [*auth.ACTION_SHORTHANDS, *auth.PIN_ACTIONS]
#: The lifetimes :func:`pinpanel.auth.parse_lifetime` accepts, as a pattern.
LIFETIME_PATTERN = r"^(never|[1-9][0-9]{0,5}[smhdw])$"


def grants_of(request: Request, pins: dict[str, Any]) -> frozenset[tuple[int, str]]:
    """``{"garage": ["pulse"], "18": ["switch"]}`` -> grants, pins resolved on the board."""
    if not pins:
        raise Problem(422, "pins must name at least one pin")
    board = board_of(request)
    per_pin: dict[int, list[str]] = {}
    for ref_, actions in pins.items():
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise Problem(422, f"pins.{ref_} must be a list of actions")
        try:
            per_pin.setdefault(board.resolve(ref_).pin, []).extend(actions)
        except PinError as exc:
            raise Problem(422, f"pins: {exc}") from None
    try:
        return auth.make_grants(per_pin)
    except AuthError as exc:
        raise Problem(422, str(exc)) from None


def lifetime_of(text: str) -> float | None:
    try:
        return auth.parse_lifetime(text)
    except AuthError as exc:
        raise Problem(422, str(exc)) from None


async def make_guest(request: Request, name: str, grants: frozenset[tuple[int, str]],
                     lifetime_s: float | None) -> dict[str, Any]:
    keyring = _guard(request).keyring
    try:
        token = await keyring.create(name, "control", grants=grants, lifetime_s=lifetime_s,
                                     kind="guest")
    except TokenExistsError as exc:
        raise Problem(409, str(exc)) from None
    except AuthError as exc:
        raise Problem(422, str(exc)) from None
    expires = None if lifetime_s is None else keyring.now() + lifetime_s
    return {"name": name, "actor": auth.GUEST_PREFIX + name,
            "link": first_start.login_link(request.app.state.config, token),
            "pins": auth.grants_as_json(grants), "expires_at": auth.stamp(expires)}


def guest_list(request: Request) -> list[dict[str, Any]]:
    return [{**info.as_json(), "actor": auth.GUEST_PREFIX + info.name}
            for info in _guard(request).keyring.tokens() if info.kind == "guest"]


# -- the API -----------------------------------------------------------------------------------


async def list_guests(request: Request) -> Response:
    return JSONResponse({"guests": guest_list(request)}, headers=NO_STORE)


async def create_guest(request: Request) -> Response:
    body = expect_object(await read_json(request), {"name": str, "pins": dict, "lifetime": str},
                         required=("name", "pins"))
    made = await make_guest(request, body["name"], grants_of(request, body["pins"]),
                            lifetime_of(body.get("lifetime", "1d")))
    return JSONResponse(made, status_code=201, headers=NO_STORE)


async def revoke_guest(request: Request) -> Response:
    try:
        await _guard(request).keyring.revoke(request.path_params["name"], kind="guest")
    except TokenNotFoundError as exc:
        raise Problem(404, str(exc)) from None
    return Response(status_code=204)


# -- the page ----------------------------------------------------------------------------------


def _render(request: Request, status: int = 200, **extra: Any) -> Response:
    board = board_of(request)
    outputs = [v for v in board.views() if v.mode != "input"]
    context = page_context(request, outputs=outputs, guests=guest_list(request),
                           lifetimes=PAGE_LIFETIMES, actions=PAGE_ACTIONS, **extra)
    headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
    return TEMPLATES.TemplateResponse(request, "guests.html", context, status_code=status,
                                      headers=headers)


async def guests_page(request: Request) -> Response:
    return _render(request)


async def _form(request: Request) -> dict[str, list[str]]:
    body = await read_body(request, request.app.state.max_body_bytes)
    fields: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, []).append(value)
    return fields


async def guests_submit(request: Request) -> Response:
    """The page's form: ``name``, ``lifetime`` and ``grant`` fields ``<pin>:<action>``."""
    form = await _form(request)
    name = (form.get("name") or [""])[0].strip()
    pins: dict[str, list[str]] = {}
    for grant in form.get("grant", []):
        pin, _, action = grant.partition(":")
        pins.setdefault(pin, []).append(action)
    try:
        made = await make_guest(request, name, grants_of(request, pins),
                                lifetime_of((form.get("lifetime") or ["1d"])[0]))
    except Problem as exc:
        return _render(request, exc.status, error=exc.detail, name=name)
    return _render(request, 201, made=made, qr=qr_svg(made["link"]))


async def guests_revoke(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        await _guard(request).keyring.revoke(name, kind="guest")
    except TokenNotFoundError as exc:
        return _render(request, 404, error=str(exc))
    return RedirectResponse(request.url_for("guests_page").path, status_code=303,
                            headers=NO_STORE)


async def phone_submit(request: Request) -> Response:
    """"Add a phone": a new full login link (admin or control) for the admin's own device."""
    form = await _form(request)
    name = (form.get("name") or [""])[0].strip()
    scope = (form.get("scope") or ["control"])[0]
    try:
        token = await _guard(request).keyring.create(name, scope)
    except TokenExistsError as exc:
        return _render(request, 409, error=str(exc), name=name)
    except AuthError as exc:
        return _render(request, 422, error=str(exc), name=name)
    link = first_start.login_link(request.app.state.config, token)
    return _render(request, 201, phone={"name": name, "scope": scope, "link": link},
                   qr=qr_svg(link))


# -- the routes and their document ---------------------------------------------------------

WHY = {400: "Malformed JSON", 404: "No guest link has that name",
       409: "A token or guest link with that name exists", 413: "Body too large",
       415: "Body is not JSON", 422: "Bad name, pin, action or lifetime"}
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"}


def _guest_body(config: Config) -> dict[str, Any]:
    return {"type": "object", "required": ["name", "pins"], "additionalProperties": False,
            "properties": {
                "name": _NAME,
                "pins": {"type": "object", "minProperties": 1,
                         "description": "BCM number or pin id -> actions allowed there (on, "
                                        "off, toggle, pulse, level, angle, simulate; switch = "
                                        "on, off and toggle; an empty list: see only)",
                         "propertyNames": {"enum": pin_refs(config)},
                         "additionalProperties": {"type": "array", "items": {
                             "enum": ACTION_ENUM}}},
                "lifetime": {"type": "string", "default": "1d", "pattern": LIFETIME_PATTERN,
                             "description": "1h, 1d, 1w, <n>s|m|h|d|w, or never (until "
                                            "revoked)"}}}
_PINS_OUT = {"type": ["object", "null"], "description": "BCM number -> actions",
             "additionalProperties": {"type": "array", "items": {"type": "string"}}}
SCHEMAS: dict[str, Any] = {
    "GuestBody": _guest_body,
    "NewGuest": {"type": "object", "required": ["name", "actor", "link", "pins", "expires_at"],
                 "properties": {"name": {"type": "string"}, "actor": {"type": "string"},
                                "link": {"type": "string", "description":
                                         "The login link (a password: shown only this once)"},
                                "pins": _PINS_OUT,
                                "expires_at": {"type": ["string", "null"]}}},
    "Guest": {"type": "object", "required": ["name", "actor", "pins", "expires_at"],
              "properties": {"name": {"type": "string"}, "actor": {"type": "string"},
                             "scope": {"type": "string"}, "created_at": {"type": "string"},
                             "last_used_at": {"type": ["string", "null"]},
                             "pins": _PINS_OUT, "expires_at": {"type": ["string", "null"]}}},
}
FORMS: dict[str, Any] = {
    "GuestForm": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "lifetime": {"type": "string", "enum": ["1h", "1d", "1w",
                                                                             "never"]},
        "grant": {"type": "array", "items": {"type": "string"},
                  "description": "<BCM>:<action>, repeated (switch, pulse, level...)"},
        "csrf_token": {"type": "string"}}},
    "PhoneForm": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string"}, "scope": {"type": "string", "enum": ["control", "admin"]},
        "csrf_token": {"type": "string"}}},
}


def _form_body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": ref(name)}}}


def routes() -> list[ApiRoute]:
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return [
        ApiRoute("/api/v1/guests", list_guests, methods=["GET"], name="guests", policy="admin",
                 schemas={"Guest": SCHEMAS["Guest"]}, openapi={
                     "summary": "List guest links (admin): pins, actions, expiry; never links",
                     "tags": ["guests"], "responses": {"200": json_response(
                         {"type": "object", "properties": {
                             "guests": {"type": "array", "items": ref("Guest")}}},
                         "Every guest link")}}),
        ApiRoute("/api/v1/guests", create_guest, methods=["POST"], name="guest_create",
                 policy="admin", schemas={k: SCHEMAS[k] for k in ("GuestBody", "NewGuest")},
                 openapi={
                     "summary": "Make a guest link (admin) limited to pins, actions and a "
                                "lifetime; the answer holds the link, once",
                     "tags": ["guests"], "requestBody": json_body("GuestBody"),
                     "responses": {"201": json_response(ref("NewGuest"), "Made"),
                                   **problems(WHY, 400, 409, 413, 415, 422)}}),
        ApiRoute("/api/v1/guests/{name}", revoke_guest, methods=["DELETE"],
                 name="guest_revoke", policy="admin", openapi={
                     "summary": "Revoke a guest link (admin): it and its sessions stop at once",
                     "tags": ["guests"], "parameters": [name_param],
                     "responses": {"204": {"description": "Revoked"}, **problems(WHY, 404)}}),
        ApiRoute("/guests", guests_page, methods=["GET"], name="guests_page", policy="admin",
                 openapi={"summary": "The guest links page (admin)", "tags": ["page"],
                          "responses": {"200": html_response()}}),
        ApiRoute("/guests", guests_submit, methods=["POST"], name="guests_submit",
                 policy="admin", schemas={"GuestForm": FORMS["GuestForm"]}, openapi={
                     "summary": "Make a guest link from the page's form (admin)",
                     "tags": ["page"], "requestBody": _form_body("GuestForm"),
                     "responses": {"201": html_response("The link and its QR code"),
                                   "409": html_response("The name is taken"),
                                   "422": html_response("A bad name, pin or lifetime")}}),
        ApiRoute("/guests/{name}/revoke", guests_revoke, methods=["POST"],
                 name="guests_revoke", policy="admin", openapi={
                     "summary": "Revoke a guest link from the page (admin)", "tags": ["page"],
                     "parameters": [name_param],
                     "responses": {"303": {"description": "Back to the guests page"},
                                   "404": html_response("No such guest link")}}),
        ApiRoute("/guests/phone", phone_submit, methods=["POST"], name="phone_submit",
                 policy="admin", schemas={"PhoneForm": FORMS["PhoneForm"]}, openapi={
                     "summary": "Add a phone (admin): a new login link and QR code",
                     "tags": ["page"], "requestBody": _form_body("PhoneForm"),
                     "responses": {"201": html_response("The link and its QR code"),
                                   "409": html_response("The name is taken"),
                                   "422": html_response("A bad name or scope")}}),
    ]
