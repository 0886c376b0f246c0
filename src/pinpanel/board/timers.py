"""Pulses, auto-off timers and fades: changes the board schedules on its clock.

Each carries a generation number on its pin, so a timer that fires after a newer command
took the pin over does nothing.
"""

from __future__ import annotations

import logging

from pinpanel.board.commit import Committing
from pinpanel.board.pin import PULSE, PinRecord
from pinpanel.errors import HardwareError
from pinpanel.levels import FADE_STEP_S, fade_level, is_on, off_value

log = logging.getLogger(__name__)


class Timed(Committing):
    """Arm a pin's pulse/auto-off timer (its end is a change by ``pulse``), run its fades."""

    def _arm_timer(self, pin: PinRecord, ms: int) -> None:
        pin.cancel_timer()
        gen = pin.timer_gen
        pin.pulse_until = self.clock.time() + ms / 1000
        pin.timer = self.clock.call_later(
            ms / 1000, lambda: self._spawn(lambda: self._timer_fired(pin, gen)))

    async def _timer_fired(self, pin: PinRecord, gen: int) -> None:
        async with pin.lock:
            if pin.timer_gen != gen:
                return  # a newer command took over this pin
            pin.timer = pin.pulse_until = None
            before = self._current(pin)
            if not is_on(pin.config, before):
                return
            pin.cancel_fade()
            self._write(pin, off_value(pin.config))
            pending = self._commit([self._record(pin, before, off_value(pin.config), PULSE)])
        await pending

    def _start_fade(self, pin: PinRecord, start: float, target: float, ms: int) -> None:
        """Move the hardware from ``start`` to ``target`` over ``ms``, a step at a time."""
        pin.remember(target)
        t0 = self.clock.time()
        t1 = t0 + ms / 1000
        pin.fade_until = t1
        gen = pin.fade_gen

        def step() -> None:
            if pin.fade_gen != gen:
                return  # a later command took the pin over
            now = self.clock.time()
            try:
                self.hardware.write(pin.bcm, fade_level(start, target, t0, t1, now))
            except HardwareError:
                log.exception("fading GPIO%d failed", pin.bcm)
                now = t1
            if now >= t1:
                pin.fade_timer = None
                pin.fade_until = None
                return
            pin.fade_timer = self.clock.call_later(FADE_STEP_S, step)

        step()
