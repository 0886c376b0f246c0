"""What a request handler needs from the app: the board, and who is asking.

Handlers never reach into module globals: the board and settings live on ``app.state``,
set once by :func:`pinpanel.web.app.create_app`. The security layer puts the caller's
identity in the ASGI scope under :data:`PRINCIPAL_KEY`; the audit log records it.
"""

from __future__ import annotations

from starlette.requests import Request

from pinpanel.auth import SEE, Principal, may
from pinpanel.board import Board
from pinpanel.changes import Actor
from pinpanel.store import Store
from pinpanel.web.problems import Problem

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


def principal_of(request: Request) -> Principal | None:
    principal = request.scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else None


def require(request: Request, action: str, pin: int) -> None:
    """403 unless the caller may do ``action`` on ``pin`` (:func:`pinpanel.auth.may`).

    Asked before the body is used and before the board is: a refusal changes nothing.
    """
    principal = principal_of(request)
    if principal is None:  # no security layer in front (cannot happen in the app)
        raise Problem(403, "no principal")
    if not may(principal, action, pin):
        doing = "see" if action == SEE else action
        raise Problem(403, f"{principal.name!r} may not {doing} pin {pin}")


def visible_pins(request: Request) -> frozenset[int] | None:
    """The pins this caller may see; None: every pin (an unlimited principal)."""
    principal = principal_of(request)
    return None if principal is None else principal.pins()
