"""Apply: several outputs set at once in ONE durable commit (a scene, a group).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from pinpanel.board.pin import PinRecord, PinRef, check_command
from pinpanel.board.timers import Timed
from pinpanel.changes import Actor, Change, ChangeRecord, PinView
from pinpanel.errors import HardwareError, PinValueError
from pinpanel.levels import PinValue, check_level, is_on, off_value, on_value


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Board.apply` did: each asked-for pin as published, and every change.

    ``changes`` are the changes of its one commit (interlock partners switched off
    included), in seq order and contiguous; empty when every pin already was as asked.
    """

    pins: list[PinView]
    changes: list[Change]


class Applying(Timed):
    """Many pins, one commit: all checked first, all locks in one order, one seq range."""

    async def apply(self, targets: Mapping[PinRef, bool | float], actor: Actor) -> Applied:
        """Set several outputs at once, in ONE durable commit (a scene, a group).

        The same path as :meth:`command`, for many pins: every pin is checked first (an
        unknown pin or an input changes nothing; so does asking for two interlocked pins on),
        then, under all their locks (taken in one order, so two scenes never deadlock),
        pins going off are written first, interlock partners of pins going on are switched
        off, pins going on are written last; all of it is queued as one commit, so the
        changes carry one contiguous seq range and are published together.

        A target is on/off (a pwm pin on comes up at its remembered level) or, for a pwm
        pin, a level (a float 0.0-1.0; 0 is off).
        """
        wanted: dict[int, tuple[PinRecord, bool]] = {}
        levels: dict[int, float] = {}
        for ref, state in targets.items():
            pin = self._pin(ref)
            check_command(pin.config, "on", None)
            if isinstance(state, float) or (isinstance(state, int) and
                                            not isinstance(state, bool)):
                levels[pin.bcm] = check_level(pin.config, state)
                state = levels[pin.bcm] > 0
            wanted[pin.bcm] = (pin, bool(state))
        for pin, state in wanted.values():
            clash = [o.bcm for o in pin.partners if state and wanted.get(o.bcm, (o, False))[1]]
            if clash:
                raise PinValueError(f"GPIO{pin.bcm} and GPIO{clash[0]} are interlocked; only "
                                    "one of them can be turned on")
        locks: dict[int, asyncio.Lock] = {}
        for pin, _ in wanted.values():
            for member in (pin, *pin.partners):
                locks.setdefault(id(member.lock), member.lock)
        order = sorted(locks.values(), key=lambda lock: min(
            p.bcm for p in self._pins.values() if p.lock is lock))
        async with contextlib.AsyncExitStack() as stack:
            for lock in order:
                await stack.enter_async_context(lock)
            waits = self._apply_locked(wanted, actor, levels)
        changes: list[Change] = []
        for future in waits:
            for change in await future:
                if change not in changes:
                    changes.append(change)
        changes.sort(key=lambda c: c.seq)
        views: list[PinView] = []
        for pin, _ in wanted.values():
            mine = next((c.pin for c in reversed(changes) if c.committed.pin == pin.bcm), None)
            views.append(mine if mine is not None else self._committed_view(pin))
        return Applied(views, changes)

    def _apply_locked(self, wanted: dict[int, tuple[PinRecord, bool]], actor: Actor,
                      levels: Mapping[int, float]) -> list[asyncio.Future[list[Change]]]:
        """:meth:`apply`'s hardware writes and its one commit; the caller holds the locks.

        A hardware write that fails puts back the pins already written, so nothing that
        is not committed stays changed.
        """
        interlock = Actor(actor.name, "interlock", actor.client)
        # (pin, value before, value after, who); a pwm pin on is at its remembered level
        steps: list[tuple[PinRecord, PinValue, PinValue, Actor]] = []
        for pin, state in wanted.values():
            pin.cancel_timer()
            if pin.cancel_fade():
                self._write(pin, pin.value)
            before = self._current(pin)
            if not state and is_on(pin.config, before):
                steps.append((pin, before, off_value(pin.config), actor))
        for pin, state in wanted.values():
            for other in pin.partners if state else ():
                if other.bcm in wanted or any(o is other for o, _, _, _ in steps):
                    continue
                if other.cancel_fade():
                    self._write(other, other.value)
                before = self._current(other)
                if is_on(other.config, before):
                    other.cancel_timer()
                    steps.append((other, before, off_value(other.config), interlock))
        for pin, state in wanted.values():
            before = self._current(pin)
            level = levels.get(pin.bcm)
            if state and level is not None and before != level:
                steps.append((pin, before, level, actor))
            elif state and level is None and not is_on(pin.config, before):
                steps.append((pin, before, on_value(pin.config, pin.memory), actor))
        records: list[ChangeRecord] = []
        written: list[tuple[PinRecord, PinValue]] = []
        try:
            for pin, before, after, who in steps:
                self._write(pin, after)
                written.append((pin, before))
                records.append(self._record(pin, before, after, who))
        except HardwareError:
            for pin, before in reversed(written):
                with contextlib.suppress(HardwareError):
                    self._write(pin, before)
            raise
        for pin, state in wanted.values():
            if state and pin.config.auto_off_ms:
                self._arm_timer(pin, pin.config.auto_off_ms)
        waits = [self._commit(records)] if records else []
        for pin, _ in wanted.values():
            if pin.pending is not None and all(pin.pending is not w for w in waits):
                waits.append(pin.pending)  # another caller's commit, still in flight
        return waits
