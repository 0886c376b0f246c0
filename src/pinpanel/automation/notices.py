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

from dataclasses import dataclass
from typing import Any, Literal

from pinpanel.feed import FeedSubscription

NoticeEvent = Literal["rule_stopped", "rule_resumed"]
StopReason = Literal["depth", "rate"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One automation event: its SSE event name and its JSON data."""

    event: NoticeEvent
    data: dict[str, Any]


#: One stream's queue of notices (bounded; dropped when it falls behind).
NoticeSubscription = FeedSubscription[Notice]


class Notices:
    """The publisher: the rule engine publishes, each subscriber gets its own copy."""

    def __init__(self) -> None:
        self._subscribers: set[NoticeSubscription] = set()

    def subscribe(self) -> NoticeSubscription:
        sub = NoticeSubscription(self._subscribers.discard)
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
