"""Commit and publish: a change is answered once it is on disk and published.

If the durable commit fails, the outputs it changed go back to their last committed
state before anyone is answered (the revert), so nothing uncommitted stays on a line. The
one output that cannot go back, a pin switched off by an interlock whose partner a newer
change has turned on again, has its off committed instead, so line and store still agree.
"""

from __future__ import annotations

import asyncio
import logging

from pinpanel.board.pin import PinRecord
from pinpanel.board.table import PinTable
from pinpanel.changes import Actor, Change, ChangeRecord, Committed, PinView
from pinpanel.errors import HardwareError
from pinpanel.levels import committed_value, is_on, off_value

log = logging.getLogger(__name__)

#: Who records the off of a pin an interlock keeps off after a failed commit.
INTERLOCK = Actor("system", "interlock")


class Committing(PinTable):
    """Queue records for one durable commit, publish what landed, revert what did not."""

    def _commit(self, records: list[ChangeRecord]) -> asyncio.Future[list[Change]]:
        """Queue records for one durable commit; the future holds what was published.

        It resolves once the changes are on disk and published, in order (the store's
        futures resolve in commit order); or fails once the pins are reverted.
        """
        published: asyncio.Future[list[Change]] = asyncio.get_running_loop().create_future()
        stored = self.store.commit(records)
        stored.add_done_callback(lambda future: self._committed(future, published))
        for record in records:
            pin = self._pins[record.pin]
            pin.pending = published
            pin.queued = record.new
        return published

    def _committed(self, stored: asyncio.Future[list[Committed]],
                   published: asyncio.Future[list[Change]]) -> None:
        """Publish a commit's changes, each with its pin's view built once, then answer.

        The board's own state follows the store even if every waiter has gone (a waiter
        that is cancelled cancels ``published``, never the commit).
        """
        if stored.cancelled():
            published.cancel()
            return
        if (error := stored.exception()) is not None:
            self._revert(published, error)
            if not published.done():
                published.set_exception(error)
            return
        changes: list[Change] = []
        for item in stored.result():
            pin = self._pins[item.pin]
            pin.last = item
            if pin.pending is published:
                pin.pending = None
            changes.append(Change(item, self._view(pin, item.new, item)))
        # Answer first, then publish, in this one callback: nothing runs in between, so
        # the answer still follows the publish, but the waiter is woken ahead of every
        # stream the publish wakes (else a toggle's reply queues behind 1,000 streams).
        if not published.done():
            published.set_result(changes)
        for change in changes:
            self.hub.publish(change)

    def _revert(self, published: asyncio.Future[list[Change]], error: BaseException) -> None:
        """A commit failed: put the outputs it changed back to their last committed state.

        This runs before the commit's waiters are told (they await ``published``), so a
        503 is answered with the hardware already back. There is no await between a
        command's hardware write and its queueing, so no pin lock is needed here. A pin
        with a newer change queued behind the failed one is left to that change: it either
        commits (and the line is right) or fails and comes back here.
        """
        log.error("reverting pins to their last committed state: %s", error)
        failed = [p for p in self._pins.values() if p.pending is published]
        # Pins going back to off first, so an interlock partner going back on finds them off.
        failed.sort(key=lambda p: bool(p.last and p.last.new))
        stay_off: list[PinRecord] = []
        for pin in failed:
            pin.pending = None
            last = pin.last
            if last is None:
                pin.queued = None
                continue
            pin.queued = last.new
            value = committed_value(pin.config, last)
            if not pin.config.is_output or self._current(pin) == value:
                continue
            if last.new and any(is_on(o.config, self._current(o)) for o in pin.partners):
                stay_off.append(pin)
                continue
            if not last.new:
                pin.cancel_timer()
            pin.cancel_fade()
            try:
                self._write(pin, value)
            except HardwareError:
                log.exception("reverting GPIO%d failed", pin.bcm)
        if stay_off:
            self._commit_staying_off(stay_off)

    def _commit_staying_off(self, pins: list[PinRecord]) -> None:
        """Pins that were switched off by an interlock and cannot go back on: commit the off.

        A partner is on by a newer change still queued, made while this pin's off was on its
        way (so that change carries no record for it). The line must stay off, so the store
        must say off too: a commit of its own, queued behind that change. If it fails as
        well, the revert comes back here, and by then the partner's change has either
        failed (it is off again, and this pin goes back on) or landed. A partner whose on
        is already committed leaves nothing to wait for: retrying against a store that
        keeps failing would never end, so the pin stays off, logged, until the next commit.
        """
        waiting = [p for p in pins if any(
            o.pending is not None and is_on(o.config, self._current(o)) for o in p.partners)]
        for pin in pins:
            log.error("GPIO%d stays off: an interlocked pin is on%s", pin.bcm,
                      "" if pin in waiting else " (and the store could not record it)")
        if not waiting:
            return
        records = [self._record(p, committed_value(p.config, p.last), off_value(p.config),
                                INTERLOCK) for p in waiting if p.last is not None]
        self._commit(records).add_done_callback(_seen)

    async def _published(self, pin: PinRecord, pending: asyncio.Future[list[Change]] | None,
                         ) -> PinView:
        """``pin``'s view as published by ``pending``, once it is; as committed if not in it.

        ``pending`` may hold only other pins' changes (interlock partners switched off for
        a pin that was already on).
        """
        changes = await pending if pending is not None else []
        mine = next((c.pin for c in reversed(changes) if c.committed.pin == pin.bcm), None)
        return mine if mine is not None else self._committed_view(pin)


def _seen(future: asyncio.Future[list[Change]]) -> None:
    """Nobody awaits a commit the board makes on its own: take its outcome (the revert has
    already dealt with a failure), so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()
