"""An MCP3008 channel (SPI, ``dtparam=spi=on``) through gpiozero, scaled to a unit.

gpiozero gives the channel as 0.0-1.0 of the reference voltage; ``scale`` and ``offset``
make it a quantity (``scale = 3.3`` for volts at a 3.3 V reference, or a sensor's slope).
The device is opened by :class:`~pinpanel.hardware.Hardware` (the one owner of gpiozero and
its pin factory).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pinpanel.errors import HardwareError, SensorReadError


class MCP3008:
    def __init__(self, open_channel: Callable[[], Callable[[], float]], scale: float,
                 offset: float, lock: threading.Lock | None = None) -> None:
        self._open = open_channel
        self._raw: Callable[[], float] | None = None
        self.scale = scale
        self.offset = offset
        self._lock = lock or threading.Lock()  # one transfer at a time on the SPI bus

    def read(self) -> dict[str, float]:
        with self._lock:
            try:
                if self._raw is None:
                    self._raw = self._open()
                raw = self._raw()
            except (HardwareError, OSError) as exc:
                raise SensorReadError("io", str(exc)) from exc
        return {"value": round(raw * self.scale + self.offset, 4)}

    def close(self) -> None:
        pass  # the hardware closes its devices
