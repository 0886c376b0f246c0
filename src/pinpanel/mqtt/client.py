"""The MQTT client pinpanel's connections use, and a limit on how much noise they log.

Shared by the Pi's bridge and nothing else in this package; the hub has its own connection
(siblings never import each other) with the same socket option.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import aiomqtt

#: paho leaves Nagle's algorithm on: attributes + state (two small writes) would then wait
#: for the broker's delayed ACK, about 40 ms per change. Small messages go out at once.
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class NoiseLimiter:
    """At most ``burst`` log lines per ``window`` seconds; then a count of what was dropped.

    A misbehaving client can send thousands of bad commands a second; the log (on an SD
    card) must not grow with them, yet the first few should be visible.
    """

    def __init__(self, logger: logging.Logger, burst: int = 10, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._burst = burst
        self._window = window
        self._clock = clock
        self._start = clock()
        self._count = 0
        self.suppressed = 0

    def __call__(self, message: str, *args: object) -> bool:
        """Log a warning unless over the limit; True when it was logged."""
        now = self._clock()
        if now - self._start >= self._window:
            if self.suppressed:
                self._log.warning("%d more ignored MQTT messages were not logged",
                                  self.suppressed)
            self._start, self._count, self.suppressed = now, 0, 0
        if self._count >= self._burst:
            self.suppressed += 1
            return False
        self._count += 1
        self._log.warning(message, *args)
        return True


class _Client(aiomqtt.Client):
    """aiomqtt's client, with write interest registered only for a socket that is still open.

    paho asks for write interest from inside its own calls; aiomqtt defers the
    ``add_writer`` to the next loop iteration. After a freeze longer than the broker's
    timeout (SIGSTOP, a stalled SD card), one iteration holds both the keep-alive ping
    (asking for write interest) and the broker's close (paho closes the socket), so the
    deferred ``add_writer`` met a closed file descriptor: asyncio logged an ``ERROR``
    traceback, and a descriptor already reused by a new connection would have been
    handed a dead client's writer. Here the registration looks again when it runs and
    skips a socket paho no longer holds; the lost connection is reported once, by the
    bridge, as a warning.
    """

    def _on_socket_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        fileno = sock.fileno()

        def write() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001 (any failure here ends the session)
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            if client.socket() is sock and sock.fileno() == fileno:
                self._loop.add_writer(fileno, write)

        # paho may call this from the executor thread that runs connect().
        self._loop.call_soon_threadsafe(register)
