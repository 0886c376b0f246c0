"""The OpenAPI document is assembled from the app's routes: the same set, method for method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Mount, Route

from pinpanel import auth
from pinpanel.board import ACTIONS
from pinpanel.telemetry import Telemetry
from pinpanel.web.app import app_routes, create_app, spec
from pinpanel.web.routing import ApiRoute
from tests.unit.conftest import running_board

#: Routes that are not part of the API contract (assets), by path prefix.
NOT_API = ("/static",)


def routed_operations(app: Any) -> set[tuple[str, str]]:
    operations: set[tuple[str, str]] = set()
    for route in app.routes:
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


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in document["paths"].items() for method in item}


async def test_every_route_is_documented_and_every_documented_path_routed(
        tmp_path: Path) -> None:
    async with running_board(tmp_path) as board:
        app = create_app(board.config, board, board.store, auth.Keyring(board.store),
                         Telemetry())
        document = app.state.openapi
        routed, documented = routed_operations(app), documented_operations(document)
        assert routed - documented == set(), "give these routes an openapi operation"
        assert documented - routed == set(), "documented but not routed"
        assert document == spec(app.routes, board.config)


def test_the_document_is_built_from_the_routes_it_is_given() -> None:
    """Nothing is registered at import time: fewer routes, a smaller document."""
    some = [r for r in app_routes() if getattr(r, "name", "") in ("healthz", "tokens")]
    assert set(spec(some)["paths"]) == {"/healthz", "/api/v1/tokens"}
    assert set(spec(some)["components"]["schemas"]) == {"Problem", "TokenInfo"}


def test_every_operation_has_a_summary_and_responses() -> None:
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("responses"), (method, path)


def test_the_layers_in_front_of_the_routes_are_documented_where_they_apply() -> None:
    """401/403/429 wherever credentials are checked, 413 on every state change, 431 on all."""
    policies = {r.name: r.policy for r in app_routes() if isinstance(r, ApiRoute)}
    operations = {(m, p): op for p, item in spec()["paths"].items() for m, op in item.items()}
    for (method, path), op in operations.items():
        statuses = set(op["responses"])
        assert "431" in statuses, (method, path)
        if method in ("post", "put", "delete"):
            assert {"403", "413"} <= statuses, (method, path)
        if op.get("security") != []:
            assert {"401", "403", "429"} <= statuses, (method, path)
    open_paths = {"/healthz", "/login", "/logout", "/sw.js"}
    assert {p for (_, p), op in operations.items() if op.get("security") == []} == open_paths
    assert sorted(n for n, p in policies.items() if p == "open") == [
        "healthz", "login", "login_submit", "logout", "service_worker"]


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
