"""The API contract, assembled from the app's routes: ``/openapi.json`` and ``/docs``.

Each route carries its own OpenAPI operation (see :class:`~pinpanel.web.routing.ApiRoute`);
this module only puts them together, adds what every operation shares because of the layers
in front of it (the security layer's 401/403/429, the body cap's 413, the header cap's 431),
and holds the small helpers the routes write their fragments with. Nothing is registered at
import time: the document is exactly the routes the app was built with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.routing import BaseRoute

from pinpanel import __version__
from pinpanel.config import Config
from pinpanel.web.routing import ApiRoute, Documented

PROBLEM = {"$ref": "#/components/schemas/Problem"}
#: The shape of every problem document (see web/problems.py).
SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                               "status": {"type": "integer"}, "detail": {"type": "string"}}},
}
_CONVERTER = re.compile(r"{(\w+):\w+}")
UNSAFE = frozenset({"post", "put", "patch", "delete"})

#: What the layers in front of every route can answer, added to each operation they apply
#: to (an operation's own description of a status wins).
CREDENTIAL_REFUSALS = {
    401: "Missing or bad credentials",
    403: "Credentials lack the scope, or a state change from another site",
    429: "Too many failed credential checks from this address; see Retry-After",
}
UNSAFE_REFUSALS = {
    403: "A state change from another site, or without the session's CSRF token",
    413: "Body too large (server.max_body_bytes)",
}
HEADERS_TOO_LARGE = {"description": "Request line and headers larger than 16 KiB "
                                    "(answered before pinpanel reads the request)",
                     "content": {"text/plain": {}}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def html_response(description: str = "HTML") -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {}}}


def problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {
        "schema": PROBLEM}}}


def problems(why: Mapping[int, str], *statuses: int) -> dict[str, Any]:
    """Problem-document responses for ``statuses``, described from ``why``."""
    return {str(s): problem(why[s]) for s in statuses}


def json_body(schema_name: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": ref(schema_name)}}}


def template(path: str) -> str:
    """``/api/v1/pins/{pin}/{action:str}`` -> ``/api/v1/pins/{pin}/{action}``."""
    return _CONVERTER.sub(r"{\1}", path)


def _operation(documented: Documented, config: Config) -> dict[str, Any]:
    op = documented(config) if callable(documented) else documented
    return dict(op)


def _with_layers(op: dict[str, Any], route: ApiRoute, method: str) -> dict[str, Any]:
    """The operation plus the statuses the layers in front of the route can answer."""
    responses = dict(op.get("responses", {}))
    extra: dict[int, str] = {}
    if route.policy != "open":
        extra.update(CREDENTIAL_REFUSALS)
    if method in UNSAFE:
        extra = {**UNSAFE_REFUSALS, **extra}
    for status, why in extra.items():
        responses.setdefault(str(status), problem(why))
    responses.setdefault("431", HEADERS_TOO_LARGE)
    if route.policy == "open" and "security" not in op:
        op["security"] = []  # credentials are neither needed nor looked at
    op["responses"] = dict(sorted(responses.items()))
    return op


def operations(routes: Iterable[BaseRoute], config: Config,
               ) -> Iterable[tuple[str, str, dict[str, Any], ApiRoute]]:
    """(path, method, operation, route) for every documented route and method."""
    for route in routes:
        if not isinstance(route, ApiRoute):
            continue
        methods = sorted(m.lower() for m in (route.methods or ()) if m != "HEAD")
        documented: Mapping[str, Documented] = route.openapi_paths or (
            {template(route.path): route.openapi} if route.openapi is not None else {})
        for path, op in documented.items():
            for method in methods:
                yield path, method, _with_layers(_operation(op, config), route, method), route


def build_spec(routes: Iterable[BaseRoute], config: Config,
               security_schemes: Mapping[str, Any]) -> dict[str, Any]:
    """The whole API as an OpenAPI 3.1 document, from ``routes`` as the app serves them."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = dict(SCHEMAS)
    for path, method, op, route in operations(routes, config):
        paths.setdefault(path, {})[method] = op
        for name, made in route.schemas.items():
            # A schema may be made from the config (one whose values are the pins).
            schema = made(config) if callable(made) else made
            if schemas.setdefault(name, schema) != schema:
                raise ValueError(f"two routes define the schema {name!r} differently")
    return {
        "openapi": "3.1.0",
        "info": {"title": "pinpanel", "version": __version__,
                 "description": "A Raspberry Pi's GPIO pins over HTTP. {pin} is a BCM number "
                                "or a pin id. Errors are RFC 9457 problem documents."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": dict(security_schemes)},
        "security": [{name: []} for name in security_schemes],
    }
