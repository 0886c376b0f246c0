"""One JSON error shape for the API: RFC 9457 ``application/problem+json``.

Every refusal names its status, a short title and a detail a person can act on. Domain
errors from the core are mapped here, in one table, so an adapter never invents a status.
The tutorial's routes keep their own ``{"Error": ...}`` shape (see ``compat``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pinpanel.errors import (
    AutomationConflictError,
    AutomationError,
    HardwareError,
    PinModeError,
    PinpanelError,
    PinValueError,
    SensorValueError,
    SimulationOnlyError,
    StoreError,
    UnknownNameError,
    UnknownPinError,
    UnknownSensorError,
)

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
    500: "Internal Server Error", 503: "Service Unavailable",
}
#: Core errors and the status each means at the HTTP boundary (first match wins).
STATUS_OF: tuple[tuple[type[PinpanelError], int], ...] = (
    (SimulationOnlyError, 404),
    (UnknownPinError, 404),
    (UnknownSensorError, 404),
    (SensorValueError, 422),
    (UnknownNameError, 404),
    (AutomationConflictError, 409),
    (AutomationError, 422),
    (PinModeError, 409),
    (PinValueError, 422),
    (StoreError, 503),
    (HardwareError, 503),
)


class ProblemResponse(Response):
    media_type = PROBLEM_TYPE

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
                "detail": detail, **extra}
        super().__init__(json.dumps(body, separators=(",", ":")), status_code=status,
                         headers=headers)


class Problem(Exception):
    """Raise to answer with a problem document from anywhere in a request."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra


def status_for(exc: PinpanelError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 500)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return ProblemResponse(exc.status, exc.detail, **exc.extra)


async def on_domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PinpanelError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return ProblemResponse(status, str(exc))


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != TITLES.get(exc.status_code) else {
        404: f"no such resource: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, exc.detail)
    return ProblemResponse(exc.status_code, str(detail), headers=dict(exc.headers or {}))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ProblemResponse(500, "internal error; the change, if any, was not applied")


EXCEPTION_HANDLERS = {
    Problem: on_problem,
    PinpanelError: on_domain_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
