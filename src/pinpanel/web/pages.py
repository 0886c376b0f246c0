"""The page people use: a table of pins that works on a phone and without JavaScript.

Each Toggle button is a plain form posting to the tutorial's ``/toggle?pin=N`` and
answered with a redirect back here, so the page works with scripts off; the script in
``static/`` only adds live updates on top.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pinpanel import __version__
from pinpanel.store import format_time
from pinpanel.web import header_diagram, history, security
from pinpanel.web.context import board_of

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
# Every template gets csrf_token (for forms and <meta name="csrf-token">) and session_user.
TEMPLATES.context_processors.append(security.template_context)


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
    views = board.views()
    context = page_context(request, pins=views, seq=board.hub.last_seq,
                           header=header_diagram.slots(views), hd=header_diagram,
                           settings={p.pin: p for p in board.config.pins},
                           now=format_time(datetime.fromtimestamp(board.clock.time(), UTC)),
                           **await history.page_history(request))
    return TEMPLATES.TemplateResponse(request, "index.html", context,
                                      headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [Route("/", page, methods=["GET"], name="page")]
