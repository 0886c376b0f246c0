"""The change vocabulary: who changed a pin, the change before and after its commit, the view.

A pin change takes exactly these shapes on its one path, each meaning something different:

* :class:`Actor`: who asked (a token name, ``mqtt``, ``pulse``...), why, and from where;
* :class:`ChangeRecord`: a change the board has made in hardware, not yet on disk;
* :class:`Committed`: the same change once durably committed, with its sequence number;
  it is also an audit row (``GET /api/v1/history``) and a pin's last change;
* :class:`PinView`: one pin as every adapter reports it (identity, state, seq);
* :class:`Change`: what the hub publishes, a committed change with the pin's view after it.

This is a leaf module (it imports nothing of pinpanel), so the store, the board and every
adapter share it without importing each other. The time format lives here too: every
timestamp pinpanel stores or shows is the fixed-width UTC form of :func:`format_time`, so
text order is time order in SQLite and in JSON alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: (whole seconds since the epoch, their text up to the seconds) of the last ``utc_now``.
_second: tuple[int, str] = (-1, "")


def format_time(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC with milliseconds (naive means UTC); fixed width."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def utc_now() -> str:
    """Now, in :func:`format_time`'s form (milliseconds truncated, as there).

    Every change is stamped with it on the loop; the date and time up to the second are
    formatted once a second, not once a change (``strftime`` was most of its cost).
    """
    global _second  # one tuple, replaced whole: safe from any thread
    second, rest = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _second = cached
    return f"{cached[1]}.{rest // 1_000_000:03d}Z"


def parse_time(text: str) -> datetime:
    """A timestamp in :func:`format_time`'s form back to an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a change, for the audit log: a token name, ``mqtt``, ``pulse``...

    ``cause`` says through what (``api``, ``form``, ``interlock``, ``startup``...);
    ``client`` is the peer's address when there is one.
    """

    name: str
    cause: str
    client: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """A change about to be committed; the store gives it its sequence number.

    ``pin_id`` is the pin's id when the change was made (the config may rename it later);
    ``old`` is None when the pin's state before it is not known (its first record).
    A pwm pin's change also carries its levels (0.0-1.0), a servo's its angles (None:
    detached); ``state`` is then ``level > 0`` or "attached". A plain pin has neither.
    """

    pin: int
    pin_id: str
    old: bool | None
    new: bool
    actor: Actor
    at: str
    old_level: float | None = field(default=None, kw_only=True)
    new_level: float | None = field(default=None, kw_only=True)
    old_angle: float | None = field(default=None, kw_only=True)
    new_angle: float | None = field(default=None, kw_only=True)

    def committed(self, seq: int) -> Committed:
        """This change as committed with ``seq``."""
        return Committed(self.pin, self.pin_id, self.old, self.new, self.actor, self.at, seq,
                         old_level=self.old_level, new_level=self.new_level,
                         old_angle=self.old_angle, new_angle=self.new_angle)

    def value_json(self) -> dict[str, Any]:
        """The levels or angles of this change, keyed as the history and events show them."""
        data: dict[str, Any] = {}
        if self.old_level is not None or self.new_level is not None:
            data |= {"old_level": self.old_level, "new_level": self.new_level}
        if self.old_angle is not None or self.new_angle is not None:
            data |= {"old_angle": self.old_angle, "new_angle": self.new_angle}
        return data


@dataclass(frozen=True, slots=True)
class Committed(ChangeRecord):
    """A change that is durably on disk, with its sequence number: one audit row.

    A pin's last committed change is one of these too. Retention may have trimmed its
    history row; the store then knows only what it keeps per pin, so ``old`` and the
    actor's ``client`` are None and ``pin_id`` is empty.
    """

    seq: int

    def as_json(self) -> dict[str, Any]:
        """The audit row as ``GET /api/v1/history`` lists it."""
        return {"seq": self.seq, "at": self.at, "pin": self.pin, "id": self.pin_id,
                "old": self.old, "new": self.new, **self.value_json(),
                "cause": self.actor.cause, "actor": self.actor.name,
                "client": self.actor.client}


@dataclass(frozen=True, slots=True)
class PinView:
    """One pin as every adapter reports it: BCM number and id are its identities.

    ``state`` and ``seq`` always belong together: ``seq`` is the change that set ``state``
    (0 when nothing was ever recorded) and ``changed_at`` its time. A pwm pin adds its
    ``level`` and a servo its ``angle`` (None: detached), set by the same change;
    ``fade_until`` is when a fade towards that level ends (the hardware is on its way).
    """

    pin: int
    id: str
    name: str
    mode: str
    state: bool
    active_low: bool
    seq: int
    changed_at: str | None
    pulse_until: str | None = None
    level: float | None = None
    angle: float | None = None
    fade_until: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "pin": self.pin, "id": self.id, "name": self.name, "mode": self.mode,
            "state": self.state, "active_low": self.active_low, "seq": self.seq,
            "changed_at": self.changed_at,
        }
        if self.mode == "pwm":
            data["level"] = self.level
        elif self.mode == "servo":
            data["angle"] = self.angle
        if self.pulse_until is not None:
            data["pulse_until"] = self.pulse_until
        if self.fade_until is not None:
            data["fade_until"] = self.fade_until
        return data


@dataclass(frozen=True, slots=True)
class Change:
    """A committed change as told to every subscriber: the change and the pin after it."""

    committed: Committed
    pin: PinView

    @property
    def seq(self) -> int:
        return self.committed.seq

    def as_json(self) -> dict[str, Any]:
        """The event stream's ``change`` data."""
        c = self.committed
        return {"seq": c.seq, "pin": self.pin.as_json(), "old": c.old, **c.value_json(),
                "actor": c.actor.name, "cause": c.actor.cause, "at": c.at}


__all__ = [
    "Actor", "Change", "ChangeRecord", "Committed", "PinView", "format_time", "parse_time",
    "utc_now",
]
