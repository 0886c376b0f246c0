"""The HTTP adapter: Starlette routes over the board core (see :func:`create_app`)."""

from pinpanel.web.app import create_app

__all__ = ["create_app"]
