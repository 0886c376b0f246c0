"""The HomeKit adapter: pinpanel as a bridge in Apple's Home app (``pinpanel[homekit]``).

:mod:`~pinpanel.homekit.state` keeps the setup code, the pairings and the accessory ids;
:mod:`~pinpanel.homekit.accessories` maps a pin or a sensor to its HomeKit services;
:mod:`~pinpanel.homekit.bridge` runs HAP-python's server on pinpanel's loop and connects
it to the board. The runtime imports this package only when ``[homekit] enabled`` is set,
so a server without it carries none of HAP-python's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pinpanel.board import Board
from pinpanel.changes import Change
from pinpanel.config import Config
from pinpanel.sensors.sampler import Sampler

if TYPE_CHECKING:
    from pinpanel.homekit.bridge import HomeKitBridge

log = logging.getLogger(__name__)

#: What a server with ``[homekit] enabled`` but without HAP-python says, once.
MISSING = ("homekit: [homekit] enabled needs HAP-python; install it with "
           "pip install 'pinpanel[homekit]' (serving without HomeKit until then)")


def adapter(config: Config, board: Board, data_dir: Path, *,
            listen: Callable[[Callable[[Change], None]], None], addresses: list[str],
            sensors: Sampler | None = None) -> HomeKitBridge | None:
    """The bridge when ``[homekit]`` is on and HAP-python is installed, else None.

    Without the extra the server still runs (the relays matter more than the Home app) and
    says, in the log and on /homekit, what to install.
    """
    if not config.homekit.enabled:
        return None
    try:
        import pyhap  # noqa: F401
    except ImportError:
        log.error(MISSING)
        return None
    from pinpanel.homekit.bridge import HomeKitBridge

    return HomeKitBridge(config, board, data_dir, listen=listen, addresses=addresses,
                         sensors=sensors)
