"""``[[sensors]]``: what each configured sensor is, declared once and checked in two passes.

A sensor is one table with an ``id``, a ``kind`` and that kind's keys. Every key is a field
of :class:`SensorConfig` with its help text in ``metadata`` (as :mod:`pinpanel.config`
declares its settings), so the loader, the README's reference table and the error messages
come from one place. :data:`KIND_KEYS` says which keys belong to which kind: a key of
another kind is an error with its path (``sensors[1].channel: applies only to mcp3008``),
not silently ignored.

The cross-field pass (duplicate ids, a counter on a pin that ``[[pins]]`` or another counter
already claims) sees every table, also those with problems of their own, so one run reports
every problem once. A leaf under :mod:`pinpanel.config`: it imports only the settings.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pinpanel.settings import Setting, about, settings_of

SensorKind = Literal["ds18b20", "bme280", "mcp3008", "cpu_temperature", "counter"]
SensorPull = Literal["up", "down", "none"]
SENSOR_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: A 1-wire DS18B20's kernel name: family 28, a dash, 12 hex digits of its serial.
W1_ADDRESS = re.compile(r"^28-[0-9a-f]{12}$")
BME280_ADDRESSES = (0x76, 0x77)
INTERVAL_MAX_S = 86_400


@dataclass(frozen=True)
class SensorConfig:
    """One configured sensor. ``id`` names it in URLs, topics and metrics."""

    id: str = field(metadata=about(
        "URL and topic slug. Required. Lowercase, starts with a letter."))
    kind: SensorKind = field(metadata=about(
        "Required: ds18b20 (1-wire), bme280 (I2C), mcp3008 (SPI ADC), cpu_temperature, "
        "counter (pulses on an input pin)."))
    name: str = field(default="", metadata=about("Human name shown on the page; default the id."))
    interval_s: int = field(default=30, metadata=about(
        "Seconds between reads.", minimum=1, maximum=INTERVAL_MAX_S))
    min_change: float = field(default=0.0, metadata=about(
        "Deadband: a read that moved less than this from the last stored one is neither "
        "stored nor published (one is still kept every 10 minutes).", minimum=0))
    address: str = field(default="", metadata=about(
        "ds18b20: the device's 28-xxxxxxxxxxxx name (default: the only one found); "
        "bme280: 0x76 or 0x77 (default 0x76)."))
    bus: int = field(default=1, metadata=about(
        "bme280: I2C bus number (/dev/i2c-N).", minimum=0, maximum=99))
    channel: int = field(default=-1, metadata=about(
        "mcp3008: ADC channel 0-7. Required.", minimum=0, maximum=7))
    device: int = field(default=0, metadata=about(
        "mcp3008: SPI chip select (CE0 or CE1).", minimum=0, maximum=1))
    scale: float = field(default=1.0, metadata=about(
        "mcp3008: value = raw (0.0-1.0) * scale + offset."))
    offset: float = field(default=0.0, metadata=about("mcp3008: added after scale."))
    unit: str = field(default="", metadata=about(
        "mcp3008 and counter: the unit shown and published (e.g. V, L, kWh)."))
    pin: int = field(default=-1, metadata=about(
        "counter: BCM number of the input the pulses arrive on. Required.",
        minimum=0, maximum=27))
    pull: SensorPull = field(default="up", metadata=about(
        "counter: pull resistor up, down or none."))
    debounce_ms: int = field(default=0, metadata=about(
        "counter: ignore edges closer than this.", minimum=0, maximum=10_000))
    pulses_per_unit: float = field(default=1.0, metadata=about(
        "counter: pulses per unit (e.g. 450 per litre for a YF-S201 flow meter).",
        minimum=0))

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    @property
    def i2c_address(self) -> int:
        """bme280: the address as a number (default 0x76)."""
        return int(self.address, 16) if self.address else BME280_ADDRESSES[0]


#: The keys of one ``[[sensors]]`` table.
SENSOR_SETTINGS: tuple[Setting, ...] = settings_of("sensors", SensorConfig)
_KEYS: dict[str, Setting] = {s.name: s for s in SENSOR_SETTINGS}
_COMMON = frozenset({"id", "kind", "name", "interval_s", "min_change"})
#: The keys each kind takes besides the common ones.
KIND_KEYS: dict[str, frozenset[str]] = {
    "ds18b20": frozenset({"address"}),
    "bme280": frozenset({"address", "bus"}),
    "mcp3008": frozenset({"channel", "device", "scale", "offset", "unit"}),
    "cpu_temperature": frozenset(),
    "counter": frozenset({"pin", "pull", "debounce_ms", "pulses_per_unit", "unit"}),
}
_REQUIRED: dict[str, tuple[str, ...]] = {"mcp3008": ("channel",), "counter": ("pin",)}


@dataclass(frozen=True)
class _Draft:
    path: str
    id: str | None
    pin: int | None  # a counter's BCM number, when readable
    config: SensorConfig | None


def _check_value(key: str, value: Any, path: str, problems: list[str]) -> Any:
    setting = _KEYS[key]
    if key == "address" and isinstance(value, int) and not isinstance(value, bool):
        value = hex(value)  # bme280's address written as TOML's 0x76
    return setting.check(value, path, problems)


def _load_one(table: object, path: str, problems: list[str]) -> _Draft | None:
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table ([[sensors]])")
        return None
    before = len(problems)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            problems.append(f"{path}.{key}: unknown key (expected one of {', '.join(_KEYS)})")
            continue
        checked = _check_value(key, value, f"{path}.{key}", problems)
        if checked is not None:
            values[key] = checked
    for key in ("id", "kind"):
        if key not in table:
            problems.append(f"{path}.{key}: required")
    sensor_id: str | None = values.get("id")
    if sensor_id is not None and not SENSOR_ID.match(sensor_id):
        problems.append(f"{path}.id: {sensor_id!r} must be lowercase letters, digits, - or _, "
                        "starting with a letter (at most 32)")
    kind: str | None = values.get("kind")
    if kind is not None:
        allowed = _COMMON | KIND_KEYS[kind]
        for key in table:
            if key in _KEYS and key not in allowed:
                owners = sorted(k for k, keys in KIND_KEYS.items() if key in keys)
                problems.append(f"{path}.{key}: applies only to {' and '.join(owners)} sensors")
        for key in _REQUIRED.get(kind, ()):
            if key not in table:
                problems.append(f"{path}.{key}: required for a {kind} sensor")
        _check_address(kind, values.get("address"), path, problems)
    if values.get("pulses_per_unit") == 0:
        problems.append(f"{path}.pulses_per_unit: must be more than 0")
    pin = values.get("pin") if kind == "counter" else None
    config = SensorConfig(**values) if len(problems) == before else None
    return _Draft(path, sensor_id, pin, config)


def _check_address(kind: str, address: str | None, path: str, problems: list[str]) -> None:
    if not address:
        return
    if kind == "ds18b20" and not W1_ADDRESS.match(address):
        problems.append(f"{path}.address: {address!r} is not a DS18B20 name "
                        "(28- and 12 hex digits, as in /sys/bus/w1/devices)")
    if kind == "bme280":
        try:
            number = int(address, 16)
        except ValueError:
            number = -1
        if number not in BME280_ADDRESSES:
            problems.append(f"{path}.address: a BME280 answers at 0x76 or 0x77, got {address!r}")


def load_sensors(raw: object, pins: Mapping[int, str], pin_ids: Collection[str],
                 problems: list[str]) -> tuple[SensorConfig, ...]:
    """The ``sensors`` array, every problem recorded with its path.

    ``pins`` maps each BCM number ``[[pins]]`` claims to that pin's path, ``pin_ids`` are
    their ids: a counter's input is its own, never a configured pin as well.
    """
    if not isinstance(raw, list):
        problems.append("sensors: expected an array of tables ([[sensors]])")
        return ()
    drafts = [d for i, t in enumerate(raw) if (d := _load_one(t, f"sensors[{i}]", problems))]
    seen_id: dict[str, str] = {}
    seen_pin: dict[int, str] = dict(pins)
    for draft in drafts:
        if draft.id is not None:
            if draft.id in seen_id:
                problems.append(f"{draft.path}.id: {draft.id!r} is already used by "
                                f"{seen_id[draft.id]}")
            elif draft.id in pin_ids:
                problems.append(f"{draft.path}.id: {draft.id!r} is already a pin's id "
                                "(topics and URLs would collide)")
            seen_id.setdefault(draft.id, draft.path)
        if draft.pin is not None:
            if draft.pin in seen_pin:
                problems.append(f"{draft.path}.pin: BCM {draft.pin} is already used by "
                                f"{seen_pin[draft.pin]}")
            seen_pin.setdefault(draft.pin, draft.path)
    return tuple(d.config for d in drafts if d.config is not None)
