"""Notifications: a durable outbox (a table) drained by one sender task, with retries.

A rule's ``notify`` only *queues* (one row, committed before the rule goes on), so nothing
waits on a network and a notification queued before a crash or a power cut is sent after
the restart. The sender posts each due row: to a ``webhook`` as JSON (with
``X-Pinpanel-Signature: sha256=<hex HMAC-SHA256 of the body>`` when the notifier has a
``secret``), or to an ``ntfy`` topic URL as ntfy's plain-text message with a ``Title``.
A 2xx answer removes the row; anything else (an error status, no answer in
:data:`SEND_TIMEOUT_S`) retries it after 1, 2, 4 ... seconds, at most an hour apart, and
gives up after :data:`MAX_ATTEMPTS` with an error in the log.

The sender sleeps until the next row is due or a new one is queued: no polling. HTTP goes
through the standard library's urllib in a thread: one small POST does not need another
dependency, and the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pinpanel.board import Clock
from pinpanel.changes import utc_now
from pinpanel.rule_config import NotifierConfig
from pinpanel.store import Store

if TYPE_CHECKING:
    import urllib.request

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 15
BACKOFF_MAX_S = 3600.0
SIGNATURE_HEADER = "X-Pinpanel-Signature"


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_of(notifier: NotifierConfig, payload: Mapping[str, Any]) -> urllib.request.Request:
    """The HTTP request that delivers ``payload`` to ``notifier``.

    urllib is imported here, not at the top: a server that never notifies never loads it
    (``serve`` keeps its start-up imports small).
    """
    import urllib.request
    if notifier.kind == "ntfy":
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if payload.get("title"):
            headers["Title"] = str(payload["title"])
        headers["Tags"] = "pinpanel"
        body = str(payload.get("message", "")).encode()
    else:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if notifier.secret:
            headers[SIGNATURE_HEADER] = signature(notifier.secret, body)
    headers["User-Agent"] = "pinpanel"
    # The URL is http(s):// only: the config loader refuses any other scheme.
    return urllib.request.Request(notifier.url, data=body, headers=headers,  # noqa: S310
                                  method="POST")


def _send(request: urllib.request.Request) -> None:
    import urllib.request

    with urllib.request.urlopen(request, timeout=SEND_TIMEOUT_S) as answer:  # noqa: S310
        answer.read()


class Outbox:
    """Queue notifications durably; :meth:`run` sends them."""

    def __init__(self, store: Store, notifiers: Mapping[str, NotifierConfig],
                 clock: Clock) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.clock = clock
        self._wake = asyncio.Event()
        self.sent = 0

    async def queue(self, notifier: str, payload: Mapping[str, Any]) -> int:
        body = json.dumps({**payload, "queued_at": utc_now()}, sort_keys=True)
        row = await self.store.queue_notification(notifier, body, self.clock.time())
        self._wake.set()
        return row

    async def run(self, stop: asyncio.Event) -> None:
        """Send due rows until ``stop``; rows left from before a restart go at once."""
        first = True
        while not stop.is_set():
            now = self.clock.time()
            rows = self.store.due_notifications(float("inf") if first else now)
            first = False
            for row_id, target, body, attempts in rows:
                await self._deliver(row_id, target, body, attempts)
            if rows:
                continue
            due = self.store.next_notification_at()
            timeout = None if due is None else max(due - self.clock.time(), 0.0)
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()),
                       asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await waiter

    async def _deliver(self, row_id: int, target: str, body: str, attempts: int) -> None:
        notifier = self.notifiers.get(target)
        if notifier is None:
            log.warning("notification %d: notifier %r is no longer configured; dropped",
                        row_id, target)
            await self.store.notification_done(row_id)
            return
        try:
            await asyncio.to_thread(_send, request_of(notifier, json.loads(body)))
        except (OSError, ValueError) as exc:  # urllib's URLError and HTTPError are OSErrors
            reason = str(getattr(exc, "reason", exc))
            if attempts + 1 >= MAX_ATTEMPTS:
                log.error("notification %d to %s given up after %d attempts: %s", row_id,
                          target, attempts + 1, reason)
                await self.store.notification_done(row_id)
                return
            delay = min(2.0 ** attempts, BACKOFF_MAX_S)
            log.warning("notification %d to %s failed (%s); retrying in %.0f s", row_id,
                        target, reason, delay)
            await self.store.notification_retry(row_id, self.clock.time() + delay, reason)
            return
        self.sent += 1
        log.info("notification %d sent to %s", row_id, target)
        await self.store.notification_done(row_id)
