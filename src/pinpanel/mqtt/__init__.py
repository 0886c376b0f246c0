"""MQTT: the board's pins on a broker, and Home Assistant discovery.

:func:`adapter` is what :mod:`pinpanel.runtime` starts beside the web server. It imports the
MQTT client only when ``[mqtt] enabled = true``, so a pinpanel without MQTT starts as fast
as before. Modules: :mod:`~pinpanel.mqtt.topics` (names), :mod:`~pinpanel.mqtt.payloads`
(what a command may say), :mod:`~pinpanel.mqtt.discovery` (Home Assistant) and
:mod:`~pinpanel.mqtt.bridge` (the connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from pinpanel.board import Board
from pinpanel.config import Config


def adapter(config: Config, board: Board,
            ) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None:
    """The bridge's runner when MQTT is enabled, else None (nothing to start)."""
    if not config.mqtt.enabled:
        return None
    from pinpanel.mqtt.bridge import MqttBridge

    return MqttBridge(config, board).run
