"""What the automation tells its watchers besides pin changes: a rule stopped, resumed.

A pin change reaches everyone through the board's hub; a rule the loop protection stopped
changes no pin, so without this it would be news only to the log, the audit table and
whoever happens to poll ``GET /api/v1/rules``. :class:`Notices` is a small fan-out of such
events to subscribers (the event stream's clients), each with a bounded queue so a client
that stops reading costs a fixed amount of memory and is dropped, as the hub drops it.

Notices are not numbered: the changes' ``seq`` is the stream's resume point, and a notice
is about a state the engine still holds (a stopped rule stays stopped until it is enabled
again), so a client that reconnects is told the state again rather than replayed events.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: How many notices one subscriber may have waiting before it is dropped.
SUBSCRIBER_BUFFER = 256

NoticeEvent = Literal["rule_stopped", "rule_resumed"]
StopReason = Literal["depth", "rate"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One automation event: its SSE event name and its JSON data."""

    event: NoticeEvent
    data: dict[str, Any]


class NoticeSubscription:
    """A bounded queue of notices for one reader (an event stream)."""

    def __init__(self, notices: Notices, limit: int = SUBSCRIBER_BUFFER) -> None:
        self._notices = notices
        self._limit = limit
        self._items: deque[Notice] = deque()
        self._wake = asyncio.Event()
        self.dropped = False
        self.closed = False
        #: Called after each push: the event stream rings its one wake-up with it, so it
        #: waits on one future for every source instead of a task per source.
        self.notify: Callable[[], None] | None = None

    def push(self, notice: Notice) -> None:
        if len(self._items) >= self._limit:
            self.dropped = self.closed = True
        else:
            self._items.append(notice)
        self._wake.set()
        if self.notify is not None:
            self.notify()

    async def next_batch(self) -> list[Notice]:
        """Every notice queued so far (waiting for one); [] once closed or dropped."""
        while not self._items and not self.closed:
            self._wake.clear()
            await self._wake.wait()
        batch = list(self._items)
        self._items.clear()
        return [] if self.dropped else batch

    def take(self) -> list[Notice]:
        """What is queued now, without waiting ([] if nothing, or once dropped)."""
        batch = list(self._items)
        self._items.clear()
        return [] if self.dropped else batch

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._notices._subscribers.discard(self)


class Notices:
    """The publisher: the rule engine publishes, each subscriber gets its own copy."""

    def __init__(self) -> None:
        self._subscribers: set[NoticeSubscription] = set()

    def subscribe(self) -> NoticeSubscription:
        sub = NoticeSubscription(self)
        self._subscribers.add(sub)
        return sub

    def publish(self, notice: Notice) -> None:
        for sub in list(self._subscribers):
            sub.push(notice)
            if sub.dropped:
                self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
