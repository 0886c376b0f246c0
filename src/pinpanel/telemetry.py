"""Numbers about a running board, kept for ``/metrics``: pin changes, commit latency, gauges.

This sits beside the core rather than in ``web/`` so every adapter can report into it
without importing another adapter. The runtime makes the one :class:`Telemetry` of a
process, feeds it (a hub listener, the store's commit observer) and hands it to whoever
reports into it or renders it: the MQTT bridge sets its ``mqtt_connected`` gauge and the
web app's ``/metrics`` renders it all.

It is cheap by design (a Pi Zero has 512 MB and one slow core): plain dicts and ints, no
metrics library, and nothing is computed until someone scrapes. Counting happens in a hub
listener (one dict increment per committed change) and in the store's writer thread (one
histogram bucket per transaction, under a lock because it is another thread).
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

from pinpanel.changes import Change

#: Commit latency buckets in seconds: an fsync is ~1 ms on an SSD, tens of ms on an SD card.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """A Prometheus-style histogram fed from any thread."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last slot is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float, int]:
        """Cumulative counts per bucket (``+Inf`` last), the sum and the count."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative: list[int] = []
        running = 0
        for count in counts:
            running += count
            cumulative.append(running)
        return cumulative, total, running


@dataclass
class Gauge:
    help: str
    value: float = 0.0


class Telemetry:
    """Everything counted about one board since it started serving.

    Fed by :meth:`on_change` (a hub listener) and ``commit_seconds.observe`` (the store's
    commit observer), both registered by the runtime.
    """

    def __init__(self) -> None:
        #: (BCM, id, cause) -> committed changes.
        self.changes: dict[tuple[int, str, str], int] = {}
        self.commit_seconds = Histogram(COMMIT_BUCKETS)
        self.gauges: dict[str, Gauge] = {
            "mqtt_connected": Gauge("1 while the MQTT bridge is connected to its broker."),
        }

    def on_change(self, change: Change) -> None:
        """Hub listener: count one committed change."""
        key = (change.pin.pin, change.pin.id, change.committed.actor.cause)
        self.changes[key] = self.changes.get(key, 0) + 1

    def set_gauge(self, name: str, value: float, help: str = "") -> None:
        """Set (declaring on first use) the gauge ``pinpanel_<name>``."""
        gauge = self.gauges.get(name)
        if gauge is None:
            gauge = self.gauges[name] = Gauge(help or name.replace("_", " "))
        gauge.value = float(value)

