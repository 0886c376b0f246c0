"""The Pi's own SoC temperature, through gpiozero's ``CPUTemperature``.

Worth a reading beside relays in a closed box: a Pi throttles at 80 °C.
"""

from __future__ import annotations

from collections.abc import Callable

from pinpanel.errors import HardwareError, SensorReadError


class CPUTemperature:
    def __init__(self, open_thermometer: Callable[[], Callable[[], float]]) -> None:
        self._open = open_thermometer
        self._read: Callable[[], float] | None = None

    def read(self) -> dict[str, float]:
        try:
            if self._read is None:
                self._read = self._open()
            return {"temperature": round(self._read(), 2)}
        except (HardwareError, OSError, ValueError) as exc:
            raise SensorReadError("io", f"cannot read the CPU temperature: {exc}") from exc

    def close(self) -> None:
        pass
