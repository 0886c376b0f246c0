"""Inputs: an edge on an input line becomes a committed, published change.

gpiozero calls back from its own thread; the edge is handed to the event loop and takes
the same commit path as a command, under the pin's lock.
"""

from __future__ import annotations

from pinpanel.board.pin import INPUT, PinRecord, PinRef
from pinpanel.board.timers import Timed
from pinpanel.changes import PinView
from pinpanel.errors import PinModeError


class Inputs(Timed):
    """Input edges (and the simulated board's driven inputs) through the commit path."""

    def _edge_from_any_thread(self, bcm: int) -> None:
        """gpiozero's callback: hand the edge to the loop; never touch state from here."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn, lambda: self._input_changed(self._pins[bcm]))

    async def _input_changed(self, pin: PinRecord) -> PinView:
        async with pin.lock:
            state = self.hardware.read(pin.bcm)
            if pin.queued == state:
                pending = pin.pending
            else:
                pending = self._commit([self._record(pin, pin.queued, state, INPUT)])
        return await self._published(pin, pending)

    async def simulate(self, ref: PinRef, high: bool) -> PinView:
        """Simulated board only: drive an input's line, as a pressed button would."""
        pin = self._pin(ref)
        if pin.config.is_output:
            raise PinModeError(f"GPIO{pin.bcm} ({pin.config.id}) is an output; only inputs "
                               "are driven")
        self.hardware.drive_input(pin.bcm, high)
        return await self._input_changed(pin)
