"""What a sensor reports: its quantities, one sample of them, and the driver contract.

A *sample* is one read of one sensor: a value per quantity (a BME280 gives temperature,
humidity and pressure at once) or an error with a short code. An error is never a number:
a bad CRC or a DS18B20's power-on 85 °C becomes ``error="crc"`` / ``"power_on"``, and every
adapter shows it as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pinpanel.changes import format_time
from pinpanel.sensor_config import SensorConfig

StateClass = Literal["measurement", "total_increasing"]


@dataclass(frozen=True, slots=True)
class Quantity:
    """One reading of a sensor, with what Home Assistant and the page need to show it."""

    name: str
    unit: str
    device_class: str | None
    state_class: StateClass = "measurement"
    #: Decimal places worth showing and publishing (the sensor's resolution).
    precision: int = 2

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "device_class": self.device_class,
                "state_class": self.state_class}


_TEMPERATURE = Quantity("temperature", "°C", "temperature", precision=2)


def quantities(sensor: SensorConfig) -> tuple[Quantity, ...]:
    """The readings a sensor of this kind and configuration reports, in order."""
    if sensor.kind in ("ds18b20", "cpu_temperature"):
        return (_TEMPERATURE,)
    if sensor.kind == "bme280":
        return (_TEMPERATURE, Quantity("humidity", "%", "humidity", precision=1),
                Quantity("pressure", "hPa", "pressure", precision=1))
    if sensor.kind == "mcp3008":
        device_class = {"V": "voltage", "mV": "voltage", "A": "current",
                        "°C": "temperature", "%": None}.get(sensor.unit)
        return (Quantity("value", sensor.unit, device_class, precision=3),)
    unit = sensor.unit or "pulses"
    return (Quantity("total", unit, None, "total_increasing", precision=3),
            Quantity("rate", f"{unit}/min", None, precision=3))


@dataclass(frozen=True, slots=True)
class Sample:
    """One read of one sensor: values, or an error code (with a human detail)."""

    sensor: str
    at: float  # Unix seconds
    values: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None

    @property
    def at_text(self) -> str:
        return format_time(datetime.fromtimestamp(self.at, UTC))

    def as_json(self) -> dict[str, Any]:
        return {"sensor": self.sensor, "at": self.at_text, "values": dict(self.values),
                "error": self.error, "detail": self.detail}


class Driver(Protocol):
    """Reads one sensor. ``read`` blocks (1-wire takes ~750 ms): it runs in a thread."""

    def read(self) -> dict[str, float]:
        """A value per quantity; raises :class:`~pinpanel.errors.SensorReadError`."""
        ...

    def close(self) -> None: ...
