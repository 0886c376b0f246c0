"""The tutorial's routes, kept as its readers and their apps use them.

``GET /api/list`` -> ``{"18": false, ...}`` and ``POST /api/toggle/<pin>`` ->
``{"Success": true}``, both refusing a request whose Content-Type is not JSON, with the
tutorial's ``{"Error": ...}`` bodies, now valid JSON; and the page's form post
``POST /toggle?pin=N``, answered with a redirect back to the page. A malformed pin is a
400 here, where the tutorial crashed with a 500.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pinpanel.errors import PinError
from pinpanel.web.bodies import is_json
from pinpanel.web.context import actor_of, board_of

ONLY_JSON = {"Error": "Only JSON requests accepted"}
INVALID_PIN = {"Error": "Invalid Pin Number"}


async def api_list(request: Request) -> Response:
    if not is_json(request):
        return JSONResponse(ONLY_JSON, status_code=400)
    return JSONResponse({str(v.pin): v.state for v in board_of(request).views()})


async def api_toggle(request: Request) -> Response:
    if not is_json(request):
        return JSONResponse(ONLY_JSON, status_code=400)
    ref = request.path_params["pin"]
    if not ref.isdecimal():
        return JSONResponse(INVALID_PIN, status_code=400)
    try:
        await board_of(request).command(int(ref), "toggle", actor_of(request, "api"))
    except PinError:
        return JSONResponse(INVALID_PIN, status_code=400)
    return JSONResponse({"Success": True})


async def form_toggle(request: Request) -> Response:
    ref = request.query_params.get("pin", "")
    if not ref.isdecimal():
        return JSONResponse(INVALID_PIN, status_code=400)
    try:
        await board_of(request).command(int(ref), "toggle", actor_of(request, "form"))
    except PinError:
        return JSONResponse(INVALID_PIN, status_code=400)
    return RedirectResponse(request.url_for("page"), status_code=303)


def routes() -> list[Route]:
    return [
        Route("/api/list", api_list, methods=["GET"], name="compat_list"),
        Route("/api/toggle/{pin}", api_toggle, methods=["POST"], name="compat_toggle"),
        Route("/toggle", form_toggle, methods=["POST"], name="form_toggle"),
    ]
