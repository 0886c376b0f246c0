"""BME280 temperature, humidity and pressure over I2C (``dtparam=i2c_arm=on``).

The bus is :mod:`smbus2`'s; the register reads and Bosch's compensation formulas are the
``bme280pi`` package's (maintained, pure Python, depends on smbus2 only, and takes the bus as
an argument, so a test hands it a fake SMBus). It reads in forced mode: the chip measures once
and sleeps, which keeps it from warming itself. The others looked at: ``RPi.bme280`` (last
release 2021, pulls in pytz), ``pimoroni-bme280`` (adds ``i2cdevice``), and Adafruit's
CircuitPython driver (needs the Blinka compatibility layer, megabytes on a Pi Zero).

Both libraries are optional (``pip install 'pinpanel[sensors]'``): without them a bme280
sensor reports the error ``unavailable`` and start-up says what to install.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from pinpanel.errors import SensorReadError, SensorUnavailableError

CHIP_ID_REGISTER = 0xD0
#: 0x60 is the BME280; a BMP280 (0x56-0x58) looks the same but has no humidity.
BME280_CHIP_ID = 0x60
INSTALL = "pip install 'pinpanel[sensors]' (smbus2 and bme280pi)"


def _libraries() -> tuple[Callable[[int], Any], Callable[..., dict[str, float]]]:
    try:
        import smbus2
        from bme280pi import readout
    except ImportError as exc:
        raise SensorUnavailableError(f"the bme280 kind needs {INSTALL}: {exc}") from exc
    return smbus2.SMBus, readout.read_sensor


class BME280:
    """One BME280; the bus is opened on first read and again after a failure."""

    def __init__(self, bus: int = 1, address: int = 0x76, *,
                 open_bus: Callable[[int], Any] | None = None, lock: threading.Lock | None = None,
                 ) -> None:
        smbus, self._read_sensor = _libraries()
        self._open_bus = open_bus or smbus
        self.bus_number = bus
        self.address = address
        self._bus: Any = None
        self._lock = lock or threading.Lock()  # one transfer at a time on a shared bus

    def read(self) -> dict[str, float]:
        with self._lock:
            try:
                if self._bus is None:
                    self._bus = self._open_bus(self.bus_number)
                chip = self._bus.read_byte_data(self.address, CHIP_ID_REGISTER)
                if chip != BME280_CHIP_ID:
                    raise SensorReadError("wrong_chip", f"chip id 0x{chip:02x} at "
                                          f"0x{self.address:02x} is not a BME280 (0x60)")
                data = self._read_sensor(bus=self._bus, address=self.address)
            except SensorReadError:
                raise
            except FileNotFoundError:
                self._bus = None
                raise SensorReadError("no_bus", f"/dev/i2c-{self.bus_number} does not exist: "
                                      "add dtparam=i2c_arm=on to config.txt") from None
            except OSError as exc:
                self.close()
                raise SensorReadError("io", f"no answer at 0x{self.address:02x} on I2C bus "
                                      f"{self.bus_number}: {exc.strerror or exc}") from exc
        return {"temperature": round(data["temperature"], 2),
                "humidity": round(data["humidity"], 2),
                "pressure": round(data["pressure"], 2)}

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            with contextlib.suppress(OSError):
                bus.close()
