"""The hub that fans committed changes out to subscribers.

The hub is the far end of the one path: the board publishes a
:class:`~pinpanel.changes.Change` only after the store has committed it, and every adapter
(event stream, MQTT bridge, log line, metrics) hears it from here, in sequence order. A
slow subscriber never slows the board: each has a bounded buffer, and one that falls too
far behind is dropped and must resync (reconnect and take a fresh snapshot), as a dropped
SSE client does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from pinpanel.changes import Change

log = logging.getLogger(__name__)

#: Changes kept for ``Last-Event-ID`` resume.
REPLAY = 1024
#: Changes one subscriber may have unread before it is dropped.
SUBSCRIBER_BUFFER = 512


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and must resync from a fresh snapshot."""


class Subscription:
    """A bounded queue of changes for one subscriber; read with :meth:`next_batch`.

    Why a bare future rather than an :class:`asyncio.Event`: with 1,000 open streams a
    change wakes 1,000 readers, and the fan-out's time is what the last of them waits;
    setting one future per waiting reader is the least the loop can do per wake.
    """

    def __init__(self, hub: EventHub, limit: int) -> None:
        self._hub = hub
        self._limit = limit
        self._items: deque[Change] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._gone: asyncio.Future[None] | None = None
        self._poked = False
        self.dropped = False
        self.closed = False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, change: Change) -> bool:
        if len(self._items) >= self._limit:
            self.dropped = True
            self.closed = True
            self._wake()
            if self._gone is not None and not self._gone.done():
                self._gone.set_result(None)
            return False
        self._items.append(change)
        self._wake()
        return True

    def poke(self) -> None:
        """Wake the reader with nothing new: :meth:`next_batch` returns [] though open.

        The event stream's one keep-alive timer does this to the streams that have been
        quiet, instead of every stream keeping a timer of its own.
        """
        self._poked = True
        self._wake()

    async def next_batch(self) -> list[Change]:
        """Every change queued so far (waiting for one); [] once closed or when poked."""
        while not self._items and not self.closed and not self._poked:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._poked = False
        if self.dropped:
            raise SubscriberDropped
        batch = list(self._items)
        self._items.clear()
        return batch

    async def wait_dropped(self) -> None:
        """Return once the hub drops this subscriber (a watcher's wait, with no polling)."""
        if self.dropped:
            return
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._gone)

    def close(self) -> None:
        """Unsubscribe; wakes a reader waiting in :meth:`next_batch`."""
        self.closed = True
        self._wake()
        self._hub.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Fan-out of committed changes. Loop-thread only, like everything it feeds."""

    def __init__(self, replay: int = REPLAY, buffer: int = SUBSCRIBER_BUFFER) -> None:
        self._recent: deque[Change] = deque(maxlen=replay)
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._buffer = buffer
        self.last_seq = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """A synchronous listener (log line, metrics, MQTT queue); must not block."""
        self._listeners.append(listener)

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._buffer)
        self._subscribers.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def since(self, seq: int) -> list[Change] | None:
        """Changes after ``seq`` still held for replay, or None if some were forgotten."""
        if seq >= self.last_seq:
            return []
        if not self._recent or self._recent[0].seq > seq + 1:
            return None
        return [c for c in self._recent if c.seq > seq]

    def publish(self, change: Change) -> None:
        self.last_seq = max(self.last_seq, change.seq)
        self._recent.append(change)
        for sub in list(self._subscribers):
            if not sub.push(change):
                self._subscribers.discard(sub)
                log.warning("dropped a subscriber that fell %d changes behind", self._buffer)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                log.exception("change listener failed")
