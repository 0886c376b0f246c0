"""Failed credential checks per client address: a sliding one-minute window.

A token has 256 bits of entropy, so guessing one is hopeless anyway; the limit is there so
a script hammering the login form or the API with bad tokens shows up as 429s and as one
log line rather than thousands. Both the login form and a bad ``Authorization: Bearer``
count, since either is a guess. It slows *failing* credentials only: a request whose token
or session is valid is never refused, because behind a proxy or a NAT every user shares one
address and anyone could otherwise lock everyone out. Memory stays bounded: at most
``per_minute`` timestamps per address, and at most ``max_clients`` addresses (stale ones
are dropped first).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0


class FailureLimiter:
    """Counts failures per address; :meth:`retry_after` says when one may try again."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None if it may try now."""
        failures = self._failures.get(client)
        if failures is None or len(failures) < self.per_minute:
            return None
        age = self._clock() - failures[0]
        if age >= WINDOW_S:
            return None
        return max(1, math.ceil(WINDOW_S - age))

    def failed(self, client: str) -> tuple[int | None, bool]:
        """Count one failure: (seconds to wait, or None; True if this one began the wait).

        Failures go on counting while the client waits, so a script that keeps guessing
        keeps getting 429s; only the failure that crosses the limit is worth a log line.
        """
        before = self.retry_after(client)
        self._count(client)
        wait = self.retry_after(client)
        return wait, wait is not None and before is None

    def _count(self, client: str) -> None:
        now = self._clock()
        failures = self._failures.get(client)
        if failures is None:
            if len(self._failures) >= self._max_clients:
                self._prune(now)
            failures = self._failures[client] = deque(maxlen=self.per_minute)
        failures.append(now)

    def _prune(self, now: float) -> None:
        stale = [c for c, f in self._failures.items() if now - f[-1] >= WINDOW_S]
        for client in stale:
            del self._failures[client]
        while len(self._failures) >= self._max_clients:  # all fresh: drop the oldest entries
            del self._failures[next(iter(self._failures))]
