"""Pulses on an input pin (a water-flow or energy meter), as a total and a rate per minute.

The edges come the way every input edge does: :meth:`Hardware.claim_input
<pinpanel.hardware.Hardware.claim_input>` claims the line (with its pull and debounce) and
gpiozero calls back on each edge, on its own thread. The callback only increments a counter
under a lock: a meter can pulse hundreds of times a second, far too often for the board's
durable per-change path, and a pulse is an observation, not a command. The pin is the
counter's alone (the config refuses a ``[[pins]]`` entry on the same BCM number).

A pulse is two edges (down and up again), so counting edges and halving is right whatever
level the line rests at. The total carries over a restart: it starts from the last total
stored in the readings database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EdgeClaim = Callable[[Callable[[int], None]], None]


class Counter:
    def __init__(self, claim: EdgeClaim, pulses_per_unit: float, start_total: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pulses_per_unit = pulses_per_unit
        self._clock = clock
        self._lock = threading.Lock()
        self._edges = 0
        self._base = round(start_total * pulses_per_unit)
        self._last_at = clock()
        self._last_pulses = 0
        claim(self._edge)

    def _edge(self, _bcm: int) -> None:
        with self._lock:
            self._edges += 1

    @property
    def pulses(self) -> int:
        """Whole pulses seen since start (two edges each)."""
        with self._lock:
            return self._edges // 2

    def read(self) -> dict[str, float]:
        now = self._clock()
        pulses = self.pulses
        elapsed = now - self._last_at
        rate = (pulses - self._last_pulses) / self.pulses_per_unit / elapsed * 60 \
            if elapsed > 0 else 0.0
        self._last_at, self._last_pulses = now, pulses
        return {"total": round((self._base + pulses) / self.pulses_per_unit, 6),
                "rate": round(rate, 6)}

    def close(self) -> None:
        pass  # the hardware releases the line with the others
