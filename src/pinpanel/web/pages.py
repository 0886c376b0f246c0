"""The page people use: a table of pins that works on a phone and without JavaScript.

Each Toggle button is a plain form posting to the tutorial's ``/toggle?pin=N`` and
answered with a redirect back here, so the page works with scripts off; the script in
``static/`` only adds live updates on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pinpanel import __version__
from pinpanel.web.context import board_of

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def page_context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every page template is given: the board's facts and the request."""
    board = board_of(request)
    return {
        "version": __version__,
        "backend": board.hardware.info.name,
        "simulated": board.simulated,
        "auth_enabled": request.app.state.auth_enabled,
        **extra,
    }


async def page(request: Request) -> Response:
    board = board_of(request)
    context = page_context(request, pins=board.views(), seq=board.hub.last_seq)
    return TEMPLATES.TemplateResponse(request, "index.html", context,
                                      headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [Route("/", page, methods=["GET"], name="page")]
