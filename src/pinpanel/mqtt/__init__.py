"""MQTT: the board's pins on a broker, and Home Assistant discovery.

:func:`adapter` is what :mod:`pinpanel.runtime` starts beside the web server. It imports the
MQTT client only when ``[mqtt] enabled = true``, so a pinpanel without MQTT starts as fast
as before. Modules: :mod:`~pinpanel.mqtt.topics` (names), :mod:`~pinpanel.mqtt.payloads`
(what a command may say), :mod:`~pinpanel.mqtt.discovery` (Home Assistant) and
:mod:`~pinpanel.mqtt.bridge` (the connection), with :mod:`~pinpanel.mqtt.commands`
(commands in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # names for the signatures only: importing the package (for its topic
    # names, as the LAN announcer does) loads none of the adapter's modules
    from pinpanel.board import Board
    from pinpanel.changes import Change
    from pinpanel.config import Config
    from pinpanel.hardware import BackendInfo
    from pinpanel.mqtt.bridge import MqttBridge
    from pinpanel.mqtt.discovery import Memory
    from pinpanel.sensors.sampler import Sampler
    from pinpanel.telemetry import Telemetry


def make_bridge(config: Config, board: Board, *, listen: Callable[[Callable[[Change], None]], None],
           memory: Memory, hardware: BackendInfo, telemetry: Telemetry | None = None,
           sensors: Sampler | None = None) -> MqttBridge:
    """One device's bridge over ``board``, with what the runtime owns passed in.

    ``listen`` registers a listener for committed changes (the hub's ``add_listener``),
    ``memory`` is where discovery keeps what it published (the store) and ``hardware``
    names the board for Home Assistant's device; ``telemetry`` (the runtime's) shows
    whether the bridge is connected; ``sensors`` is the readings' sampler.
    """
    from pinpanel.mqtt.bridge import MqttBridge, model_of

    return MqttBridge(config, board, listen=listen, memory=memory, model=model_of(hardware),
                      telemetry=telemetry, sensors=sensors)


def adapter(config: Config, board: Board, *, listen: Callable[[Callable[[Change], None]], None],
            memory: Memory, hardware: BackendInfo, telemetry: Telemetry | None = None,
            sensors: Sampler | None = None,
            ) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None:
    """The bridge's runner when MQTT is enabled, else None (nothing to start)."""
    if not config.mqtt.enabled:
        return None
    return make_bridge(config, board, listen=listen, memory=memory, hardware=hardware,
                       telemetry=telemetry, sensors=sensors).run
