"""The hub: one page and one API over every pinpanel on the broker (``[hub] enabled``).

An adapter like :mod:`pinpanel.web` and :mod:`pinpanel.mqtt`, and a sibling of both: it
imports neither. It speaks to the Pis only through the broker, in the words of
:mod:`pinpanel.fleetwire`; its routes are handed to the runtime as data, which makes them
the web app's routes (same auth, same API document). Modules: :mod:`~pinpanel.hub.fleet`
(the picture), :mod:`~pinpanel.hub.link` (the connection and commands),
:mod:`~pinpanel.hub.core` (stream and fleet-wide commands), :mod:`~pinpanel.hub.api` and
:mod:`~pinpanel.hub.page`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinpanel.config import Config

if TYPE_CHECKING:
    from pinpanel.hub.core import Hub


def adapter(config: Config) -> Hub | None:
    """The hub when ``[hub] enabled = true``, else None (nothing imported, nothing run)."""
    if not config.hub.enabled:
        return None
    from pinpanel.hub.core import Hub

    return Hub(config)
