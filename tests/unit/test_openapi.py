"""The OpenAPI document and the app's routes are the same set, method for method."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount, Route

from pinpanel.board import ACTIONS
from pinpanel.web import create_app
from pinpanel.web.openapi import spec
from tests.unit.conftest import running_board

#: Routes that are not part of the API contract (assets), by path prefix.
NOT_API = ("/static",)


def routed_operations(app: object) -> set[tuple[str, str]]:
    operations: set[tuple[str, str]] = set()
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount) or not isinstance(route, Route):
            assert route.path.startswith(NOT_API), f"unexpected mount {route.path}"
            continue
        paths = [route.path]
        if route.path.endswith("/{action:str}"):  # one handler for on, off and toggle
            paths = [route.path.replace("{action:str}", action) for action in ACTIONS]
        for path in paths:
            for method in route.methods or ():
                if method != "HEAD":
                    operations.add((method.lower(), path.replace(":path", "")))
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec()["paths"].items() for method in item}


async def test_every_route_is_documented_and_every_documented_path_routed(
        tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        app = create_app(board.config, board)
        routed, documented = routed_operations(app), documented_operations()
        assert routed - documented == set(), "add these to web/openapi.py"
        assert documented - routed == set(), "documented but not routed"


def test_every_operation_has_a_summary_and_responses() -> None:
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("responses"), (method, path)


def test_schema_references_resolve() -> None:
    document = spec()
    schemas = document["components"]["schemas"]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                assert ref.split("/")[-1] in schemas, ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
