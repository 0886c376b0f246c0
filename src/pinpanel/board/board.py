"""The board core: the one place a pin changes.

Every change, whether from HTTP, the page's form, MQTT, a pulse timer or an input edge,
comes through :meth:`Board.command` (or the input path) and takes the same steps, under the
pin's lock:

1. validate (known pin, right mode, interlocks),
2. write the hardware (microseconds, on the event loop),
3. queue the change for a durable commit,
4. once committed, publish one :class:`~pinpanel.events.Change` with its sequence number.

The caller is answered only after step 4, so an acknowledged change is on disk. The lock is
released after step 3, so concurrent commands on one pin share an fsync instead of waiting
for one each; the store commits them in queue order, which is hardware order.

The board knows nothing of HTTP, MQTT or SQLite's details, and imports no adapter.
"""

from __future__ import annotations

import asyncio
import logging

from pinpanel.board.apply import Applied, Applying
from pinpanel.board.clock import Clock, LoopClock, Timer
from pinpanel.board.lifecycle import Lifecycle, Reconfigured
from pinpanel.board.pin import (
    ACTIONS,
    DEFAULT_PULSE_MS,
    SYSTEM,
    Action,
    PinRecord,
    PinRef,
    check_command,
)
from pinpanel.changes import Actor, Change, ChangeRecord, PinView
from pinpanel.config import OnExit
from pinpanel.errors import StoreError
from pinpanel.levels import (
    PinValue,
    check_angle,
    check_fade,
    check_level,
    is_on,
    off_value,
    on_value,
)

log = logging.getLogger(__name__)


class Board(Lifecycle, Applying):
    """The configured pins, their locks, timers and the path every change takes.

    Its parts live one concept a module (see :mod:`pinpanel.board`); this class adds
    the one path for a single output: command, pulse, level, angle, and close.
    """

    async def close(self, on_exit: OnExit) -> None:
        """Stop timers, switch outputs off if asked (through the one path), release pins."""
        for pin in self._pins.values():
            pin.cancel_timer()
            if pin.cancel_fade():  # land where the store says it is
                self._write(pin, pin.value)
        if on_exit == "off":
            for pin in self._pins.values():
                if pin.config.is_output:
                    try:
                        await self._switch(pin, "off", Actor("system", "shutdown"), None)
                    except Exception:
                        log.exception("switching GPIO%d off at exit failed", pin.bcm)
        for task in list(self._tasks):
            task.cancel()
        self.hardware.close(on_exit)

    async def command(self, ref: PinRef, action: Action, actor: Actor, *,
                      pulse_ms: int | None = None) -> PinView:
        """Switch an output; return it as published. ``pulse_ms`` turns it off again later."""
        return await self._switch(self._pin(ref), action, actor, pulse_ms)

    async def pulse(self, ref: PinRef, ms: int | None, actor: Actor) -> PinView:
        """On now, off after ``ms`` (default: the pin's ``pulse_ms``, else 500 ms)."""
        pin = self._pin(ref)
        length = ms if ms is not None else (pin.config.pulse_ms or DEFAULT_PULSE_MS)
        return await self._switch(pin, "on", actor, length)

    async def set_level(self, ref: PinRef, level: object, actor: Actor, *,
                        fade_ms: object = 0) -> PinView:
        """Set a pwm pin's level (0.0-1.0), at once or fading over ``fade_ms``.

        A fade commits its target at once (the answer and the event carry it, with
        ``fade_until``); the hardware then moves in steps on the event loop until a later
        command on the pin takes over. The answer does not wait for the fade.
        """
        pin = self._pin(ref)
        target = check_level(pin.config, level)
        fade = check_fade(fade_ms)
        async with pin.lock:
            pending = self._move(pin, target, actor, None, fade, self._current(pin))
        return await self._published(pin, pending)

    async def set_angle(self, ref: PinRef, angle: object, actor: Actor) -> PinView:
        """Turn a servo to ``angle``, or detach it (None: no pulses, it goes limp)."""
        pin = self._pin(ref)
        target = check_angle(pin.config, angle)
        async with pin.lock:
            pending = self._move(pin, target, actor, None, 0, self._current(pin))
        return await self._published(pin, pending)

    async def _switch(self, pin: PinRecord, action: Action, actor: Actor,
                      pulse_ms: int | None) -> PinView:
        """The one path for outputs; the view returned is the one published for the change.

        When there is nothing to change, the pin's last commit is still answered only
        once it is on disk (it may be another caller's, still in flight); with nothing in
        flight either, the answer is the pin as committed.
        """
        check_command(pin.config, action, pulse_ms)
        c = pin.config
        async with pin.lock:
            current = self._current(pin)
            on = is_on(c, current)
            # on, off and toggle mean a level or an angle too: "on" brings back the last one
            # above zero (brightness memory), and a pulse pulses at it.
            if pulse_ms is not None or action == "on" or (action == "toggle" and not on):
                target = on_value(c, pin.memory)
            else:
                target = off_value(c)
            fade = c.fade_ms if pulse_ms is None else 0
            pending = self._move(pin, target, actor, pulse_ms, fade, current)
        return await self._published(pin, pending)

    def _move(self, pin: PinRecord, target: PinValue, actor: Actor, pulse_ms: int | None,
               fade_ms: int, current: PinValue) -> asyncio.Future[list[Change]] | None:
        """Under the pin's lock: move ``pin`` from ``current`` to ``target``, queue what changed.

        ``current`` is the caller's :meth:`_current` of the pin, read under the same lock
        (one read of the line per command, not two). Interlocked partners go off first
        (never two above zero); the pin's timers and any fade stop, since a later command
        takes the pin over.
        """
        c = pin.config
        pin.cancel_timer()
        was_fading = pin.cancel_fade()
        on = is_on(c, target)
        records: list[ChangeRecord] = []
        if on:
            for other in pin.partners:
                if other.cancel_fade():
                    self._write(other, other.value)  # a partner fading out is out now
                before = self._current(other)
                if is_on(other.config, before):
                    other.cancel_timer()
                    self._write(other, off_value(other.config))
                    records.append(self._record(other, before, off_value(other.config),
                                                Actor(actor.name, "interlock", actor.client)))
        if target != current:
            if fade_ms and c.has_level:
                self._start_fade(pin, float(self.hardware.read_value(pin.bcm) or 0.0),
                                 float(target or 0.0), fade_ms)
            else:
                self._write(pin, target)
            records.append(self._record(pin, current, target, actor))
        elif was_fading:
            self._write(pin, target)  # cut short by a command that changes nothing: land
        delay = pulse_ms if pulse_ms is not None else (c.auto_off_ms if on else 0)
        if on and delay:
            self._arm_timer(pin, delay)
        return self._commit(records) if records else pin.pending


__all__ = ["ACTIONS", "SYSTEM", "Action", "Applied", "Board", "Clock", "LoopClock", "PinRef",
           "Reconfigured", "StoreError", "Timer"]
