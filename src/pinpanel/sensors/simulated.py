"""Readings for the simulated board: plausible, slowly varying, the same on every run.

Each sensor draws its base, swing and period from a generator seeded with its id, then
follows a slow sine (hours long) with a little noise: a demo page looks alive and a test
sees the same numbers every run. ``POST /api/v1/sensors/{id}/simulate`` pins a value or an
error (``{"value": 21.5}``, ``{"error": "crc"}``) until ``{"auto": true}`` lets it drift
again, so rules can be driven by hand.

A simulated counter is the real :class:`~pinpanel.sensors.counter.Counter` over a
simulated input: pulses are driven on the mock pin, so they take the real edge path.
"""

from __future__ import annotations

import math
import random
import threading
import time
import zlib
from collections.abc import Callable

from pinpanel.errors import SensorReadError
from pinpanel.sensor_config import SensorConfig
from pinpanel.sensors.counter import Counter
from pinpanel.sensors.model import quantities

#: (base, swing) per quantity name.
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (21.0, 2.5), "humidity": (55.0, 10.0), "pressure": (1013.0, 5.0),
}


class Simulated:
    """A stand-in for any kind of sensor."""

    def __init__(self, config: SensorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._rng = random.Random(zlib.crc32(config.id.encode()))
        self._lock = threading.Lock()
        self._names = [q.name for q in quantities(config)]
        self._waves: dict[str, tuple[float, float, float, float]] = {}
        for name in self._names:
            base, swing = _RANGES.get(name, (0.5 * config.scale + config.offset,
                                             0.1 * abs(config.scale)))
            if config.kind == "cpu_temperature":
                base, swing = 46.0, 4.0
            base += self._rng.uniform(-1, 1) * swing / 2
            period = self._rng.uniform(2, 6) * 3600
            self._waves[name] = (base, swing, period, self._rng.uniform(0, 2 * math.pi))
        self._fixed: dict[str, float] = {}
        self._error: str | None = None

    def set(self, *, value: float | None = None, reading: str | None = None,
            error: str | None = None, auto: bool = False) -> None:
        """Pin a value (of ``reading``, default the first) or an error; ``auto`` drifts again."""
        with self._lock:
            if auto:
                self._fixed.clear()
                self._error = None
            if error is not None:
                self._error = error
            if value is not None:
                self._error = None
                self._fixed[reading or self._names[0]] = value

    def read(self) -> dict[str, float]:
        now = self._clock()
        with self._lock:
            if self._error is not None:
                raise SensorReadError(self._error, f"simulated error: {self._error}")
            values: dict[str, float] = {}
            for name, (base, swing, period, phase) in self._waves.items():
                if name in self._fixed:
                    values[name] = self._fixed[name]
                    continue
                wave = base + swing * math.sin(2 * math.pi * now / period + phase)
                values[name] = round(wave + self._rng.gauss(0, swing / 100), 2)
            return values

    def close(self) -> None:
        pass


class SimulatedCounter:
    """The real counter over a simulated input; each read first drives a few pulses."""

    def __init__(self, config: SensorConfig, counter: Counter,
                 drive: Callable[[bool], None]) -> None:
        self.config = config
        self.counter = counter
        self._drive = drive
        self._rng = random.Random(zlib.crc32(config.id.encode()))
        self._lock = threading.Lock()
        self._error: str | None = None
        self._auto = True

    def pulse(self, count: int) -> None:
        for _ in range(count):
            self._drive(False)
            self._drive(True)

    def set(self, *, value: float | None = None, reading: str | None = None,
            error: str | None = None, auto: bool = False) -> None:
        """``value`` pulses now (the counter counts them on their edges); or an error."""
        with self._lock:
            if auto:
                self._error, self._auto = None, True
            if error is not None:
                self._error = error
            if value is not None:
                self._error, self._auto = None, False
                self.pulse(max(0, round(value)))

    def read(self) -> dict[str, float]:
        with self._lock:
            if self._error is not None:
                raise SensorReadError(self._error, f"simulated error: {self._error}")
            if self._auto:
                self.pulse(self._rng.randint(0, 6))
            return self.counter.read()

    def close(self) -> None:
        pass
