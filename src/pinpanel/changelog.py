"""One log line per committed change: the journal's view of what happened to the pins.

A hub listener, so it hears exactly what the event stream and MQTT hear, after the commit,
with the same sequence number. In text form it reads well in ``journalctl -u pinpanel``;
with ``--log-format json`` every field is its own key for log tools::

    {"time": "...", "level": "INFO", "logger": "pinpanel.changes", "message": "...",
     "event": "change", "at": "2026-11-26T19:41:02.805Z", "seq": 7, "pin": 18,
     "id": "gpio18", "state": true, "old": false, "cause": "api", "actor": "phone",
     "client": "192.168.1.20"}

Tokens and passwords never reach a Change, so they cannot reach this line either.

The lines of one pass of the event loop are logged at the end of that pass (one
``call_soon``), after the waiters of the commit have been woken: so the answer to a toggle
does not wait for its log line, and the lines of a group commit are one group for the
handler (``extra={"more": True}`` on all but the last; :class:`pinpanel.logs.GroupHandler`
writes a group in one go). A Change is frozen, so the line says what it would have said a
moment earlier.
"""

from __future__ import annotations

import asyncio
import logging

from pinpanel.changes import Change

log = logging.getLogger("pinpanel.changes")
#: Changes published in the current pass of each loop, not yet logged.
_waiting: dict[asyncio.AbstractEventLoop, list[Change]] = {}


def fields_of(change: Change) -> dict[str, object]:
    """The structured fields of one change (the JSON log line's keys)."""
    c = change.committed
    return {"event": "change", "at": c.at, "seq": c.seq, "pin": change.pin.pin,
            "id": change.pin.id, "state": change.pin.state, "old": c.old,
            "cause": c.actor.cause, "actor": c.actor.name, "client": c.actor.client}


def log_change(change: Change) -> None:
    """Hub listener: one INFO line for one committed change, at the end of this loop pass."""
    if not log.isEnabledFor(logging.INFO):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # published from no loop (a test): at once
        _log_one(change)
        return
    waiting = _waiting.get(loop)
    if waiting is None:
        waiting = _waiting[loop] = []
        loop.call_soon(_log_waiting, loop)
    waiting.append(change)


def _log_waiting(loop: asyncio.AbstractEventLoop) -> None:
    changes = _waiting.pop(loop, [])
    last = len(changes) - 1
    for n, change in enumerate(changes):
        _log_one(change, more=n < last)


def _log_one(change: Change, *, more: bool = False) -> None:
    c = change.committed
    log.info("seq=%d GPIO%d (%s) %s cause=%s actor=%s client=%s at=%s", c.seq,
             change.pin.pin, change.pin.id, "on" if change.pin.state else "off", c.actor.cause,
             c.actor.name, c.actor.client or "-", c.at,
             extra={"fields": fields_of(change), "more": more})
