"""Groups and scenes over HTTP: list them, switch a group, apply a scene.

The work is :mod:`pinpanel.automation.groups`' (MQTT calls the same functions); this module
only reads the request and answers. A scene or group is one commit: the answer carries its
pins as published and the commit's seq range.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.automation import groups
from pinpanel.web.api import PIN
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.context import actor_of, board_of
from pinpanel.web.openapi import json_response, problems, ref
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute


async def list_groups(request: Request) -> Response:
    board = board_of(request)
    return JSONResponse({"groups": [groups.group_json(board, g)
                                    for g in board.config.all_groups()]})


async def list_scenes(request: Request) -> Response:
    board = board_of(request)
    return JSONResponse({"scenes": [groups.scene_json(board, s) for s in board.config.scenes]})


async def _no_body(request: Request) -> None:
    body = await read_json(request, optional=True)
    if body is not None:
        expect_object(body, {})


async def switch_group(request: Request) -> Response:
    board = board_of(request)
    group = groups.group_of(board, request.path_params["group"])  # 404 before the body
    action = request.path_params["action"]
    if action not in groups.GROUP_ACTIONS:
        raise Problem(404, f"unknown action {action!r}; expected on, off or toggle")
    await _no_body(request)
    applied = await groups.switch_group(board, group.id, action, actor_of(request, "group"))
    return JSONResponse({"group": group.id, **groups.applied_json(applied)})


async def apply_scene(request: Request) -> Response:
    board = board_of(request)
    scene = groups.scene_of(board, request.path_params["scene"])
    await _no_body(request)
    applied = await groups.apply_scene(board, scene.id, actor_of(request, "scene"))
    return JSONResponse({"scene": scene.id, **groups.applied_json(applied)})


# -- the document ------------------------------------------------------------------------

WHY = {400: "Malformed request", 404: "Unknown group or scene", 413: "Body too large",
       415: "Body is not JSON", 422: "A body was sent, or interlocked pins would all be on",
       503: "Hardware or storage failed; nothing was changed"}
GROUP_PARAM = {"name": "group", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The group's id; `all` is every output", "example": "all"}
SCENE_PARAM = {"name": "scene", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The scene's id", "example": "evening"}
SCHEMAS: dict[str, Any] = {
    "Group": {"type": "object", "required": ["id", "name", "pins", "state"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "pins": {"type": "array", "items": {"type": "string"}, "description": "Pin ids"},
        "state": {"type": ["boolean", "null"],
                  "description": "true: all on, false: all off, null: mixed"}}},
    "GroupList": {"type": "object", "required": ["groups"], "properties": {
        "groups": {"type": "array", "items": ref("Group")}}},
    "Scene": {"type": "object", "required": ["id", "name", "set", "active"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"},
        "set": {"type": "object", "additionalProperties": {"oneOf": [
                    {"enum": ["on", "off"]}, {"type": "number", "minimum": 0, "maximum": 1}]},
                "description": "Pin id -> the state (or a pwm pin's level) the scene gives it"},
        "active": {"type": "boolean", "description": "Every pin is as the scene sets it"}}},
    "SceneList": {"type": "object", "required": ["scenes"], "properties": {
        "scenes": {"type": "array", "items": ref("Scene")}}},
    "Applied": {"type": "object", "required": ["pins", "changes", "seq"], "properties": {
        "group": {"type": "string"}, "scene": {"type": "string"},
        "pins": {"type": "array", "items": ref("Pin")},
        "changes": {"type": "integer", "description": "Pins changed by the one commit"},
        "seq": {"type": ["object", "null"], "description": "The commit's contiguous seq range",
                "properties": {"first": {"type": "integer"}, "last": {"type": "integer"}}}}},
}


def _applied(summary: str, description: str, param: dict[str, Any],
             cause: str) -> dict[str, Any]:
    return {"summary": summary, "description": description, "tags": ["groups and scenes"],
            "parameters": [param],
            "responses": {"200": json_response(ref("Applied"),
                                               f"The pins after the one commit (cause {cause})"),
                          **problems(WHY, 400, 404, 413, 415, 422, 503)}}


def routes() -> list[ApiRoute]:
    applied = {**PIN, "Applied": SCHEMAS["Applied"]}
    return [
        ApiRoute("/api/v1/groups", list_groups, methods=["GET"], name="groups", policy="read",
                 schemas={"Group": SCHEMAS["Group"], "GroupList": SCHEMAS["GroupList"]},
                 openapi={"summary": "Every group (with the built-in all)",
                          "tags": ["groups and scenes"],
                          "responses": {"200": json_response(ref("GroupList"), "The groups")}}),
        ApiRoute("/api/v1/scenes", list_scenes, methods=["GET"], name="scenes", policy="read",
                 schemas={"Scene": SCHEMAS["Scene"], "SceneList": SCHEMAS["SceneList"]},
                 openapi={"summary": "Every scene", "tags": ["groups and scenes"],
                          "responses": {"200": json_response(ref("SceneList"), "The scenes")}}),
        ApiRoute("/api/v1/scenes/{scene}/apply", apply_scene, methods=["POST"],
                 name="scene_apply", policy="control", schemas=applied,
                 openapi=_applied("Apply a scene", "Every pin of the scene in ONE commit: "
                                  "one contiguous seq range, published together; interlocks "
                                  "hold.", SCENE_PARAM, "scene")),
        ApiRoute("/api/v1/groups/{group}/{action:str}", switch_group, methods=["POST"],
                 name="group_switch", policy="control", schemas=applied, openapi_paths={
                     f"/api/v1/groups/{{group}}/{action}": _applied(
                         f"Group {action}", text, GROUP_PARAM, "group")
                     for action, text in (
                         ("on", "Every pin of the group on, in one commit."),
                         ("off", "Every pin of the group off, in one commit."),
                         ("toggle", "All off if any pin is on, else all on; one commit."))}),
    ]
