"""API v1: JSON over the board core, errors as problem documents.

``{pin}`` is the BCM number or the pin's id everywhere. Every switching route answers with
the pin as committed by that change (its ``seq`` is the one the event stream and MQTT carry).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pinpanel import __version__
from pinpanel.board import ACTIONS, Action
from pinpanel.config import PULSE_MAX_MS
from pinpanel.web.bodies import expect_object, read_json
from pinpanel.web.context import actor_of, board_of
from pinpanel.web.problems import Problem


async def list_pins(request: Request) -> Response:
    board = board_of(request)
    return JSONResponse({"pins": [v.as_json() for v in board.views()], "seq": board.hub.last_seq})


async def get_pin(request: Request) -> Response:
    return JSONResponse(board_of(request).view(request.path_params["pin"]).as_json())


async def put_pin(request: Request) -> Response:
    body = expect_object(await read_json(request), {"state": bool}, required=("state",))
    action: Action = "on" if body["state"] else "off"
    view = await board_of(request).command(request.path_params["pin"], action,
                                           actor_of(request, "api"))
    return JSONResponse(view.as_json())


async def switch_pin(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ACTIONS:  # the route pattern already limits it; keep the core honest
        raise Problem(404, f"unknown action {action!r}")
    body = await read_json(request, optional=True)
    if body is not None:
        expect_object(body, {})
    board = board_of(request)
    board.resolve(request.path_params["pin"])  # 404 before anything else
    view = await board.command(request.path_params["pin"], action, actor_of(request, "api"))
    return JSONResponse(view.as_json())


async def pulse_pin(request: Request) -> Response:
    board = board_of(request)
    board.resolve(request.path_params["pin"])
    body = await read_json(request, optional=True)
    ms: int | None = None
    if body is not None:
        ms = expect_object(body, {"ms": int}).get("ms")
        if ms is not None and not 1 <= ms <= PULSE_MAX_MS:
            raise Problem(422, f"ms must be between 1 and {PULSE_MAX_MS}, got {ms}")
    view = await board.pulse(request.path_params["pin"], ms, actor_of(request, "pulse"))
    return JSONResponse(view.as_json())


async def simulate_input(request: Request) -> Response:
    board = board_of(request)
    if not board.simulated:
        raise Problem(404, "inputs can be driven by hand only on the simulated board")
    board.resolve(request.path_params["pin"])
    body = expect_object(await read_json(request), {"level": str}, required=("level",))
    level = body["level"]
    if level not in ("high", "low"):
        raise Problem(422, f"level must be 'high' or 'low', got {level!r}")
    view = await board.simulate(request.path_params["pin"], level == "high")
    return JSONResponse(view.as_json())


def system_info(request: Request) -> dict[str, Any]:
    board = board_of(request)
    info = board.hardware.info
    return {"version": __version__, "backend": info.name, "simulated": info.simulated,
            "board": info.board, "pins": len(board.config.pins), "seq": board.hub.last_seq,
            "auth": request.app.state.auth_enabled,
            "subscribers": board.hub.subscriber_count}


async def system(request: Request) -> Response:
    return JSONResponse(system_info(request))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"], name="healthz"),
        Route("/api/v1/system", system, methods=["GET"], name="system"),
        Route("/api/v1/pins", list_pins, methods=["GET"], name="pins"),
        Route("/api/v1/pins/{pin}", get_pin, methods=["GET"], name="pin"),
        Route("/api/v1/pins/{pin}", put_pin, methods=["PUT"], name="pin_put"),
        Route("/api/v1/pins/{pin}/pulse", pulse_pin, methods=["POST"], name="pin_pulse"),
        Route("/api/v1/pins/{pin}/simulate", simulate_input, methods=["POST"],
              name="pin_simulate"),
        Route("/api/v1/pins/{pin}/{action:str}", switch_pin, methods=["POST"], name="pin_switch"),
    ]
