"""The token API, for admins: what ``pinpanel token`` does, over HTTP.

``GET /api/v1/tokens`` lists names and scopes (the secrets are not stored, so they cannot
be listed); ``POST /api/v1/tokens`` ``{"name": "phone", "scope": "control"}`` makes one and
answers 201 with the secret, the only time it is ever shown; ``DELETE
/api/v1/tokens/{name}`` revokes one and ends its browser sessions, at once. All three
need an ``admin`` token or session (see ``ROUTE_POLICY`` in ``security.py``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinpanel.errors import AuthError, TokenExistsError, TokenNotFoundError
from pinpanel.web import openapi
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.problems import Problem
from pinpanel.web.security import Guard


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


async def list_tokens(request: Request) -> Response:
    tokens = _guard(request).keyring.tokens()
    return JSONResponse({"tokens": [info.as_json() for info in tokens]},
                        headers={"Cache-Control": "no-store"})


async def create_token(request: Request) -> Response:
    body = expect_object(await read_json(request), {"name": str, "scope": str},
                         required=("name",))
    scope = body.get("scope", "control")
    try:
        token = await _guard(request).keyring.create(body["name"], scope)
    except TokenExistsError as exc:
        raise Problem(409, str(exc)) from None
    except AuthError as exc:
        raise Problem(422, str(exc)) from None
    return JSONResponse({"name": body["name"], "scope": scope, "token": token},
                        status_code=201, headers={"Cache-Control": "no-store"})


async def revoke_token(request: Request) -> Response:
    try:
        await _guard(request).keyring.revoke(request.path_params["name"])
    except TokenNotFoundError as exc:
        raise Problem(404, str(exc)) from None
    return Response(status_code=204)


def _document(spec: dict[str, Any]) -> None:
    why = {400: "Malformed JSON", 401: "Missing or bad credentials",
           403: "Not an admin", 404: "No token has that name",
           409: "A token with that name exists", 413: "Body too large",
           415: "Body is not JSON", 422: "Bad name or scope"}

    def problems(*statuses: int) -> dict[str, Any]:
        return {str(s): {"description": why[s], "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            for s in statuses}

    schemas = spec["components"]["schemas"]
    scope = {"type": "string", "enum": ["read", "control", "admin"]}
    schemas["TokenInfo"] = {"type": "object", "required": ["name", "scope", "created_at"],
                            "properties": {"name": {"type": "string"}, "scope": scope,
                                           "created_at": {"type": "string"},
                                           "last_used_at": {"type": ["string", "null"]}}}
    schemas["TokenBody"] = {"type": "object", "required": ["name"],
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string", "pattern":
                                                    "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"},
                                           "scope": {**scope, "default": "control"}}}
    schemas["NewToken"] = {"type": "object", "required": ["name", "scope", "token"],
                           "properties": {"name": {"type": "string"}, "scope": scope,
                                          "token": {"type": "string", "description":
                                                    "The secret: shown only this once"}}}
    ref = {"$ref": "#/components/schemas/TokenInfo"}
    spec["paths"]["/api/v1/tokens"] = {
        "get": {"summary": "List tokens (admin): names and scopes, never secrets",
                "tags": ["tokens"], "responses": {
                    "200": {"description": "Every token", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "tokens": {"type": "array", "items": ref}}}}}},
                    **problems(401, 403)}},
        "post": {"summary": "Make a token (admin); the answer holds the secret, once",
                 "tags": ["tokens"],
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/TokenBody"}}}},
                 "responses": {"201": {"description": "Made", "content": {
                     "application/json": {"schema": {"$ref": "#/components/schemas/NewToken"}}}},
                     **problems(400, 401, 403, 409, 413, 415, 422)}},
    }
    spec["paths"]["/api/v1/tokens/{name}"] = {"delete": {
        "summary": "Revoke a token (admin): it and its browser sessions stop working at once",
        "tags": ["tokens"],
        "parameters": [{"name": "name", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"204": {"description": "Revoked"}, **problems(401, 403, 404)}}}


openapi.extend(_document)


def routes() -> list[Route]:
    return [
        Route("/api/v1/tokens", list_tokens, methods=["GET"], name="tokens"),
        Route("/api/v1/tokens", create_token, methods=["POST"], name="token_create"),
        Route("/api/v1/tokens/{name}", revoke_token, methods=["DELETE"], name="token_revoke"),
    ]
