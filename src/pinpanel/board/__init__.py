"""The board: re-exports its public API (see :mod:`pinpanel.board.board`)."""

from pinpanel.board.board import *  # noqa: F403
