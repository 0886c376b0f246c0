"""What a request handler needs from the app: the board, and who is asking.

Handlers never reach into module globals: the board and settings live on ``app.state``,
set once by :func:`pinpanel.web.app.create_app`. The security layer puts the caller's
identity in the ASGI scope under :data:`PRINCIPAL_KEY`; the audit log records it.
"""

from __future__ import annotations

from starlette.requests import Request

from pinpanel.board import Board
from pinpanel.changes import Actor
from pinpanel.store import Store

PRINCIPAL_KEY = "pinpanel.principal"


def board_of(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


def actor_of(request: Request, cause: str) -> Actor:
    """The audit identity of this request: a token or user name, else ``anonymous``."""
    principal = request.scope.get(PRINCIPAL_KEY)
    name = getattr(principal, "name", None) or "anonymous"
    client = request.client.host if request.client else None
    return Actor(name, cause, client)


def store_of(request: Request) -> Store:
    """The store handed to the app by the runtime (history reads), never ``board.store``."""
    store: Store = request.app.state.store
    return store
