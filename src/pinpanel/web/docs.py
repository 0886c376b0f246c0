"""``/openapi.json`` for client generators, ``/docs`` for people.

Both serve the document the app factory built from its routes (``app.state.openapi``).
``/docs`` renders it on the server as plain HTML, so it works offline on a LAN with no
script or CDN and weighs a few kilobytes on a Pi Zero.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pinpanel.web.openapi import html_response, json_response
from pinpanel.web.pages import TEMPLATES, page_context
from pinpanel.web.routing import ApiRoute


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    document = request.app.state.openapi
    operations = [
        {"method": method.upper(), "path": path, **op}
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    return TEMPLATES.TemplateResponse(
        request, "docs.html", page_context(request, spec=document, operations=operations))


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/openapi.json", openapi_json, methods=["GET"], name="openapi", policy="read",
                 openapi={"summary": "This document", "tags": ["system"],
                          "responses": {"200": json_response({"type": "object"},
                                                             "OpenAPI 3.1")}}),
        ApiRoute("/docs", docs, methods=["GET"], name="docs", policy="read",
                 openapi={"summary": "This document for people", "tags": ["system"],
                          "responses": {"200": html_response()}}),
    ]
