"""One driver per configured sensor: the real kind on a Pi, :mod:`.simulated` otherwise.

A kind whose library is missing (the ``sensors`` extra: smbus2, bme280pi) or whose device
cannot be opened does not stop pinpanel: its sensor gets a :class:`Broken` driver whose
every read is the error ``unavailable`` with the reason, and the reason is logged once at
start-up. Sensors on one bus share a lock, so two reads never interleave on the wires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pinpanel.config import PinConfig
from pinpanel.errors import HardwareError, SensorReadError, SensorUnavailableError
from pinpanel.hardware import Hardware
from pinpanel.sensor_config import SensorConfig
from pinpanel.sensors import adc, bme280, counter, cpu, simulated, w1
from pinpanel.sensors.model import Driver

log = logging.getLogger("pinpanel.sensors")


class Broken:
    """A sensor that cannot be read at all; says why on every read."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def read(self) -> dict[str, float]:
        raise SensorReadError("unavailable", self.reason)

    def close(self) -> None:
        pass


def _claim(hardware: Hardware, sensor: SensorConfig) -> counter.EdgeClaim:
    def claim(on_edge: Callable[[int], None]) -> None:
        hardware.claim_input(PinConfig(pin=sensor.pin, id=sensor.id, name=sensor.name,
                                       mode="input", pull=sensor.pull,
                                       debounce_ms=sensor.debounce_ms), on_edge)
    return claim


def open_driver(sensor: SensorConfig, hardware: Hardware, locks: dict[str, threading.Lock],
                *, start_total: float = 0.0, w1_devices: Path = w1.DEVICES) -> Driver:
    """The driver of one sensor (raises :class:`SensorUnavailableError`, HardwareError)."""
    if sensor.kind == "counter":
        count = counter.Counter(_claim(hardware, sensor), sensor.pulses_per_unit, start_total)
        if hardware.info.simulated:
            return simulated.SimulatedCounter(
                sensor, count, lambda high: hardware.drive_input(sensor.pin, high))
        return count
    if hardware.info.simulated:
        return simulated.Simulated(sensor)
    if sensor.kind == "ds18b20":
        return w1.DS18B20(sensor.address, w1_devices)
    if sensor.kind == "bme280":
        return bme280.BME280(sensor.bus, sensor.i2c_address,
                             lock=locks.setdefault(f"i2c-{sensor.bus}", threading.Lock()))
    if sensor.kind == "mcp3008":
        return adc.MCP3008(lambda: hardware.open_adc(sensor.channel, sensor.device),
                           sensor.scale, sensor.offset,
                           lock=locks.setdefault("spi", threading.Lock()))
    return cpu.CPUTemperature(hardware.open_cpu_temperature)


def open_drivers(sensors: Sequence[SensorConfig], hardware: Hardware,
                 totals: Mapping[str, float] | None = None) -> dict[str, Driver]:
    """A driver per sensor, a :class:`Broken` one (logged) where it cannot be opened."""
    locks: dict[str, threading.Lock] = {}
    drivers: dict[str, Driver] = {}
    for sensor in sensors:
        try:
            drivers[sensor.id] = open_driver(sensor, hardware, locks,
                                             start_total=(totals or {}).get(sensor.id, 0.0))
        except (SensorUnavailableError, HardwareError) as exc:
            log.warning("sensor %s (%s) is unavailable: %s", sensor.id, sensor.kind, exc)
            drivers[sensor.id] = Broken(str(exc))
    return drivers
