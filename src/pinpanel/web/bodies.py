"""Reading request bodies safely: media type, size limit, JSON, then shape.

Each failure has its own status (415, 413, 400, 422) so a client knows what to fix, and a
body is read with a hard cap so a large upload cannot exhaust a Pi Zero's memory.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from pinpanel.web.problems import Problem
from pinpanel.web.replies import header

JSON_TYPES = ("application/json",)


def media_type(request: Request) -> str:
    """The request's media type without parameters (``charset`` etc.), lowercased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(request: Request) -> bool:
    return is_json_type(header(request.scope, b"content-type"))


def is_json_type(content_type: bytes | None) -> bool:
    """:func:`is_json` on a raw Content-Type header value (None: no header), for the
    plain-ASGI endpoints that read it off the scope without building Starlette's headers."""
    if content_type is None:
        return False
    return _json_media(content_type.decode("latin-1").split(";", 1)[0].strip().lower())


def _json_media(kind: str) -> bool:
    return kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json"))


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (413) without reading it all."""
    # Off the scope: building Starlette's Headers for two lookups cost more than reading.
    declared = header(request.scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():  # ASCII digits only (str.isdigit also takes "²")
            raise Problem(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise Problem(413, f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The JSON body (415 if not JSON, 413 if too large, 400 if malformed).

    With ``optional``, an empty body of any type reads as ``None``, and a JSON ``null`` is
    refused (422) rather than read as no body: the document allows no body or an object.
    """
    limit: int = request.app.state.max_body_bytes
    body = await read_body(request, limit)
    if optional and not body.strip():
        return None
    if not is_json(request):
        raise Problem(415, "send the body as JSON with Content-Type: application/json")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, f"body is not valid JSON: {exc}") from None
    if optional and value is None:
        raise Problem(422, "body must be a JSON object (or empty)")
    return value


def expect_object(value: Any, allowed: dict[str, type],
                  required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a JSON object's keys and types; 422 names the first wrong field."""
    if not isinstance(value, dict):
        raise Problem(422, "body must be a JSON object")
    for key in value:
        if key not in allowed:
            raise Problem(422, f"unknown field {key!r}; expected {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise Problem(422, f"field {key!r} is required")
    for key, kind in allowed.items():
        if key in value:
            item = value[key]
            if kind is int and isinstance(item, float) and item.is_integer():
                item = value[key] = int(item)  # 137.0 is an integer to JSON Schema too
            wrong = not isinstance(item, kind) or (kind is int and isinstance(item, bool))
            if wrong:
                name = {bool: "true or false", int: "an integer", str: "a string",
                        list: "a list", dict: "an object"}.get(kind, "something else")
                raise Problem(422, f"field {key!r} must be {name}")
    return value
