"""The token API, for admins: what ``pinpanel token`` does, over HTTP.

A token may be limited to pins and actions, and may expire: ``{"name": "garage-app",
"pins": ["garage"], "actions": ["pulse"], "expires": "1d"}`` (the same as ``pinpanel token
create NAME --pins garage --actions pulse --expires 1d``; see :func:`pinpanel.auth.may`).

``GET /api/v1/tokens`` lists names and scopes (the secrets are not stored, so they cannot
be listed); ``POST /api/v1/tokens`` ``{"name": "phone", "scope": "control"}`` makes one and
answers 201 with the secret, the only time it is ever shown; ``DELETE
/api/v1/tokens/{name}`` revokes one and ends its browser sessions, at once. All three
need an ``admin`` token or session (their policy, below).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel import auth
from pinpanel.errors import AuthError, TokenExistsError, TokenNotFoundError
from pinpanel.web import guests
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.openapi import json_body, json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute
from pinpanel.web.security import Guard


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


async def list_tokens(request: Request) -> Response:
    tokens = _guard(request).keyring.tokens()
    return JSONResponse({"tokens": [info.as_json() for info in tokens]},
                        headers={"Cache-Control": "no-store"})


async def create_token(request: Request) -> Response:
    body = expect_object(await read_json(request), {"name": str, "scope": str, "pins": list,
                                                    "actions": list, "expires": str},
                         required=("name",))
    scope = body.get("scope", "control")
    grants = None
    if "pins" in body or "actions" in body:
        pins, actions = body.get("pins", []), body.get("actions", [])
        if not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in pins) \
                or not all(isinstance(a, str) for a in actions):
            raise Problem(422, "pins must be pin ids or numbers, actions strings")
        grants = guests.grants_of(request, {str(p): list(actions) for p in pins})
    lifetime = guests.lifetime_of(body["expires"]) if "expires" in body else None
    keyring = _guard(request).keyring
    try:
        token = await keyring.create(body["name"], scope, grants=grants, lifetime_s=lifetime)
    except TokenExistsError as exc:
        raise Problem(409, str(exc)) from None
    except AuthError as exc:
        raise Problem(422, str(exc)) from None
    answer: dict[str, Any] = {"name": body["name"], "scope": scope, "token": token}
    if grants is not None:
        answer["pins"] = auth.grants_as_json(grants)
    if lifetime is not None:
        answer["expires_at"] = auth.stamp(keyring.now() + lifetime)
    return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})


async def revoke_token(request: Request) -> Response:
    try:
        await _guard(request).keyring.revoke(request.path_params["name"])
    except TokenNotFoundError as exc:
        raise Problem(404, str(exc)) from None
    return Response(status_code=204)


WHY = {400: "Malformed JSON", 404: "No token has that name",
       409: "A token with that name exists", 413: "Body too large",
       415: "Body is not JSON", 422: "Bad name, scope, pin, action or lifetime"}
_SCOPE = {"type": "string", "enum": ["read", "control", "admin"]}
_GRANTS = {"type": ["object", "null"], "description": "Limited to these pins (BCM number -> "
           "actions); null: every pin",
           "additionalProperties": {"type": "array", "items": {"type": "string"}}}
_EXPIRES = {"type": ["string", "null"], "description": "When it stops working (UTC); null: "
            "until revoked"}
SCHEMAS: dict[str, Any] = {
    "TokenInfo": {"type": "object", "required": ["name", "scope", "created_at"],
                  "properties": {"name": {"type": "string"}, "scope": _SCOPE,
                                 "created_at": {"type": "string"},
                                 "last_used_at": {"type": ["string", "null"]},
                                 "pins": _GRANTS, "expires_at": _EXPIRES}},
    "TokenBody": lambda config: {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "dependentRequired": {"actions": ["pins"]},
        "properties": {"name": {"type": "string", "pattern":
                                "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"},
                       "scope": {**_SCOPE, "default": "control"},
                       "pins": {"type": "array", "minItems": 1, "items": {
                           "enum": guests.pin_refs(config)},
                           "description": "Limit it to these pins (ids or BCM numbers)"},
                       "actions": {"type": "array", "items": {"enum": guests.ACTION_ENUM},
                                   "description": "What it may do on them (switch = on, off "
                                                  "and toggle); none: see only"},
                       "expires": {"type": "string", "pattern": guests.LIFETIME_PATTERN,
                                   "description": "Lifetime: 1h, 1d, 1w, <n>s|m|h|d|w or "
                                                  "never"}}},
    "NewToken": {"type": "object", "required": ["name", "scope", "token"],
                 "properties": {"name": {"type": "string"}, "scope": _SCOPE,
                                "token": {"type": "string",
                                          "description": "The secret: shown only this once"},
                                "pins": _GRANTS, "expires_at": _EXPIRES}},
}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/api/v1/tokens", list_tokens, methods=["GET"], name="tokens", policy="admin",
                 schemas={"TokenInfo": SCHEMAS["TokenInfo"]}, openapi={
                     "summary": "List tokens (admin): names and scopes, never secrets",
                     "tags": ["tokens"], "responses": {"200": json_response(
                         {"type": "object", "properties": {
                             "tokens": {"type": "array", "items": ref("TokenInfo")}}},
                         "Every token")}}),
        ApiRoute("/api/v1/tokens", create_token, methods=["POST"], name="token_create",
                 policy="admin", schemas={k: SCHEMAS[k] for k in ("TokenBody", "NewToken")},
                 openapi={
                     "summary": "Make a token (admin); the answer holds the secret, once",
                     "tags": ["tokens"], "requestBody": json_body("TokenBody"),
                     "responses": {"201": json_response(ref("NewToken"), "Made"),
                                   **problems(WHY, 400, 409, 413, 415, 422)}}),
        ApiRoute("/api/v1/tokens/{name}", revoke_token, methods=["DELETE"], name="token_revoke",
                 policy="admin", openapi={
                     "summary": "Revoke a token (admin): it and its browser sessions stop "
                                "working at once",
                     "tags": ["tokens"],
                     "parameters": [{"name": "name", "in": "path", "required": True,
                                     "schema": {"type": "string"}}],
                     "responses": {"204": {"description": "Revoked"}, **problems(WHY, 404)}}),
    ]
