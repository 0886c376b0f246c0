"""A bounded queue of items for one reader, shared by the sources beside the change stream.

Readings (sensors/sampler.py) and the automation's notices (automation/notices.py) both hand
their items to each open event stream through one of these. Bounded, because a stream whose
client stopped reading must not hold memory for ever: once full it is dropped, and the
stream ends so the client reconnects and gets the current state in its opening.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Items one reader may fall behind by before it is dropped.
SUBSCRIBER_BUFFER = 256


class FeedSubscription(Generic[T]):
    """One reader's queue; ``on_close`` is told when it closes, to forget it."""

    def __init__(self, on_close: Callable[[FeedSubscription[T]], None],
                 limit: int = SUBSCRIBER_BUFFER) -> None:
        self._on_close = on_close
        self._limit = limit
        self._items: deque[T] = deque()
        self._wake = asyncio.Event()
        self.dropped = False
        self.closed = False
        #: Called after each push: the event stream rings its one wake-up with it, so it
        #: waits on one future for every source instead of a task per source.
        self.notify: Callable[[], None] | None = None

    def push(self, item: T) -> None:
        if len(self._items) >= self._limit:
            self.dropped = self.closed = True
        else:
            self._items.append(item)
        self._wake.set()
        if self.notify is not None:
            self.notify()

    async def next_batch(self) -> list[T]:
        """Every item queued so far (waiting for one); [] once closed or dropped."""
        while not self._items and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        return self.take()

    def take(self) -> list[T]:
        """What is queued now, without waiting ([] if nothing, or once dropped)."""
        batch = list(self._items)
        self._items.clear()
        return [] if self.dropped else batch

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._on_close(self)
