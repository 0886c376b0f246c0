"""Rules over HTTP: list and read them (read scope), create, edit, delete (admin).

Each rule is shown with its trigger, its actions, ``last_fired`` and ``stopped`` (the loop
protection's reason, until the rule is enabled again). The work is
:class:`~pinpanel.automation.rulebook.RuleBook`'s.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.automation.rulebook import RuleBook
from pinpanel.web.bodies import read_json
from pinpanel.web.context import actor_of, board_of
from pinpanel.web.openapi import json_body, json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute


def book_of(request: Request) -> RuleBook:
    book: RuleBook | None = getattr(request.app.state, "rules", None)
    if book is None:
        raise Problem(503, "rules are not running in this server")
    return book


async def list_rules(request: Request) -> Response:
    book = book_of(request)
    board = board_of(request)
    return JSONResponse({"rules": [book.as_json(board, e) for e in book.entries()]})


async def get_rule(request: Request) -> Response:
    book = book_of(request)
    return JSONResponse(book.as_json(board_of(request), book.entry(request.path_params["rule"])))


async def create_rule(request: Request) -> Response:
    book = book_of(request)
    entry = await book.create(await read_json(request), actor_of(request, "api").name)
    return JSONResponse(book.as_json(board_of(request), entry), status_code=201)


async def update_rule(request: Request) -> Response:
    book = book_of(request)
    entry = await book.update(request.path_params["rule"], await read_json(request),
                              actor_of(request, "api").name)
    return JSONResponse(book.as_json(board_of(request), entry))


async def delete_rule(request: Request) -> Response:
    await book_of(request).delete(request.path_params["rule"], actor_of(request, "api").name)
    return Response(status_code=204)


WHY = {400: "Malformed request", 404: "Unknown rule",
       409: "The id is taken, or the rule is the config file's (only enabled changes)",
       413: "Body too large", 415: "Body is not JSON",
       422: "The rule is invalid (every problem is listed)",
       503: "Storage failed; nothing was changed"}
PARAM = {"name": "rule", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The rule's id", "example": "porch-door"}
SCHEMAS: dict[str, Any] = {
    "RuleBody": {"type": "object", "description": "id, when, then; optional for, between, "
                 "unless_pin, cooldown, otherwise, enabled (as [[rules]] in the config)",
                 "properties": {"id": {"type": "string"}, "when": {"type": "object"},
                                "then": {"type": "array", "items": {"type": "object"}},
                                "enabled": {"type": "boolean"}}},
    "Rule": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "when": {"type": "object"},
        "for_s": {"type": "number"}, "between": {"type": ["array", "null"]},
        "unless_pin": {"type": ["string", "null"]}, "cooldown_s": {"type": "number"},
        "then": {"type": "array"}, "otherwise": {"type": "array"},
        "enabled": {"type": "boolean"}, "source": {"enum": ["config", "api"]},
        "last_fired": {"type": ["string", "null"], "format": "date-time"},
        "stopped": {"type": ["string", "null"],
                    "description": "Why the loop protection stopped it"},
        "condition": {"type": ["boolean", "null"]}}},
    "RuleList": {"type": "object", "properties": {"rules": {"type": "array",
                                                            "items": ref("Rule")}}},
}
TAGS = ["automation"]


def routes() -> list[ApiRoute]:
    one = {"Rule": SCHEMAS["Rule"]}
    body = {**one, "RuleBody": SCHEMAS["RuleBody"]}
    return [
        ApiRoute("/api/v1/rules", list_rules, methods=["GET"], name="rules", policy="read",
                 schemas={**one, "RuleList": SCHEMAS["RuleList"]},
                 openapi={"summary": "Every rule with its last_fired", "tags": TAGS,
                          "responses": {"200": json_response(ref("RuleList"), "The rules")}}),
        ApiRoute("/api/v1/rules", create_rule, methods=["POST"], name="rule_create",
                 policy="admin", schemas=body,
                 openapi={"summary": "Create a rule", "tags": TAGS,
                          "requestBody": json_body("RuleBody"),
                          "responses": {"201": json_response(ref("Rule"), "Created"),
                                        **problems(WHY, 400, 409, 413, 415, 422, 503)}}),
        ApiRoute("/api/v1/rules/{rule}", get_rule, methods=["GET"], name="rule",
                 policy="read", schemas=one,
                 openapi={"summary": "One rule", "tags": TAGS, "parameters": [PARAM],
                          "responses": {"200": json_response(ref("Rule"), "The rule"),
                                        **problems(WHY, 404)}}),
        ApiRoute("/api/v1/rules/{rule}", update_rule, methods=["PUT"], name="rule_update",
                 policy="admin", schemas=body,
                 openapi={"summary": "Change a rule (fields not given stay)", "tags": TAGS,
                          "parameters": [PARAM], "requestBody": json_body("RuleBody"),
                          "responses": {"200": json_response(ref("Rule"), "Changed"),
                                        **problems(WHY, 400, 404, 409, 413, 415, 422, 503)}}),
        ApiRoute("/api/v1/rules/{rule}", delete_rule, methods=["DELETE"], name="rule_delete",
                 policy="admin",
                 openapi={"summary": "Delete a rule made over the API", "tags": TAGS,
                          "parameters": [PARAM],
                          "responses": {"204": {"description": "Deleted"},
                                        **problems(WHY, 404, 409, 503)}}),
    ]
