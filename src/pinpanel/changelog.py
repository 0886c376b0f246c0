"""One log line per committed change: the journal's view of what happened to the pins.

A hub listener, so it hears exactly what the event stream and MQTT hear, after the commit,
with the same sequence number. In text form it reads well in ``journalctl -u pinpanel``;
with ``--log-format json`` every field is its own key for log tools::

    {"time": "...", "level": "INFO", "logger": "pinpanel.changes", "message": "...",
     "event": "change", "at": "2026-11-26T19:41:02.805Z", "seq": 7, "pin": 18,
     "id": "gpio18", "state": true, "old": false, "cause": "api", "actor": "phone",
     "client": "192.168.1.20"}

Tokens and passwords never reach a Change, so they cannot reach this line either.
"""

from __future__ import annotations

import logging

from pinpanel.changes import Change

log = logging.getLogger("pinpanel.changes")


def fields_of(change: Change) -> dict[str, object]:
    """The structured fields of one change (the JSON log line's keys)."""
    c = change.committed
    return {"event": "change", "at": c.at, "seq": c.seq, "pin": change.pin.pin,
            "id": change.pin.id, "state": change.pin.state, "old": c.old,
            "cause": c.actor.cause, "actor": c.actor.name, "client": c.actor.client}


def log_change(change: Change) -> None:
    """Hub listener: one INFO line for one committed change."""
    if not log.isEnabledFor(logging.INFO):
        return
    c = change.committed
    log.info("seq=%d GPIO%d (%s) %s cause=%s actor=%s client=%s at=%s", c.seq,
             change.pin.pin, change.pin.id, "on" if change.pin.state else "off", c.actor.cause,
             c.actor.name, c.actor.client or "-", c.at,
             extra={"fields": fields_of(change)})
