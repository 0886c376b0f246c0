"""The board's table of pins: finding a pin, showing it as committed, writing its line.

The base every other part of :class:`~pinpanel.board.Board` builds on: it owns the
per-pin records and their locks, and nothing here changes what is committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pinpanel.board.clock import Clock, LoopClock
from pinpanel.board.pin import PinRecord, PinRef, interlock_groups
from pinpanel.changes import Actor, ChangeRecord, Committed, PinView, format_time, utc_now
from pinpanel.config import Config, PinConfig
from pinpanel.errors import UnknownPinError
from pinpanel.events import EventHub
from pinpanel.hardware import Hardware
from pinpanel.levels import PinValue, committed_value, is_on, record_values
from pinpanel.store import Store

log = logging.getLogger(__name__)


class PinTable:
    """The configured pins by BCM number and id, and how each one is read and written."""

    def __init__(self, config: Config, hardware: Hardware, store: Store, hub: EventHub,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.hardware = hardware
        self.store = store
        self.hub = hub
        self.clock: Clock = clock or LoopClock()
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        groups = interlock_groups(config)
        self._pins: dict[int, PinRecord] = {}
        for pin_config in config.pins:
            group = groups[pin_config.pin]
            shared = next((self._pins[g].lock for g in group if g in self._pins), None)
            self._pins[pin_config.pin] = PinRecord(pin_config, shared or asyncio.Lock())
        for pin in self._pins.values():
            pin.partners = tuple(self._pins[g] for g in groups[pin.bcm])
        self._by_id: dict[str, PinRecord] = {p.config.id: p for p in self._pins.values()}

    @property
    def simulated(self) -> bool:
        return self.hardware.info.simulated

    def resolve(self, ref: PinRef) -> PinConfig:
        """A pin by BCM number (int or digits) or id; :class:`UnknownPinError` otherwise.

        An adapter that resolves a pin first (to answer 404 before reading a body) can
        hand the result to :meth:`command` and friends, which then do not resolve again.
        """
        return self._pin(ref).config

    def _pin(self, ref: PinRef) -> PinRecord:
        if isinstance(ref, PinConfig):
            pin = self._pins.get(ref.pin)
            if pin is not None and (pin.config is ref or pin.config == ref):
                return pin
        elif isinstance(ref, int) and not isinstance(ref, bool):
            pin = self._pins.get(ref)
        else:
            text = str(ref).strip()
            pin = self._pins.get(int(text)) if text.isdecimal() else self._by_id.get(text.lower())
        if pin is None:
            raise UnknownPinError(ref.id if isinstance(ref, PinConfig) else ref)
        return pin

    def view(self, ref: PinRef) -> PinView:
        """One pin as committed: the state and ``seq`` of its last committed change.

        Never the line as it is mid-change: between a command's hardware write and its
        fsync the line is ahead of the store, and a reader shown that state with the
        previous change's ``seq`` would hold a pair that never existed. A change being
        committed shows once it is on disk and published, with its own ``seq``.
        """
        return self._committed_view(self._pin(ref))

    def views(self) -> list[PinView]:
        """Every pin as committed, as of the last published change (``hub.last_seq``).

        So a snapshot that a stream of changes follows never runs ahead of them either.
        """
        return [self._committed_view(p) for p in self._pins.values()]

    def views_key(self) -> tuple[object, ...] | None:
        """Everything :meth:`views` reads, for a cache of what is built from them.

        Equal keys (the same committed change, config and pending timers per pin, and the
        same last seq) mean equal views; None while a pin has no committed change yet (its
        view is the hardware line, which nothing here can watch).
        """
        parts: list[object] = [self.hub.last_seq]
        for p in self._pins.values():
            if p.last is None:
                return None
            parts.append((p.last, p.config, p.pulse_until, p.fade_until))
        return tuple(parts)

    def _committed_view(self, pin: PinRecord) -> PinView:
        last = pin.last  # None only before start(): the line is all there is to show
        return self._view(pin, last.new if last else self.hardware.read(pin.bcm), last)

    def _view(self, pin: PinRecord, state: bool, last: Committed | None) -> PinView:
        c, until, fade = pin.config, pin.pulse_until, pin.fade_until
        value = committed_value(c, last) if last else self.hardware.read_value(pin.bcm)
        return PinView(
            pin=c.pin, id=c.id, name=c.name, mode=c.mode, state=state,
            active_low=c.active_low, seq=last.seq if last else 0,
            changed_at=last.at if last else None,
            pulse_until=stamp(until), fade_until=stamp(fade),
            level=float(value or 0.0) if c.has_level else None,
            angle=None if not c.has_angle or value is None else float(value),
        )

    def last_changes(self) -> dict[int, Committed]:
        """Each pin's last committed change (state, seq, time, actor): no database read."""
        return {p.bcm: p.last for p in self._pins.values() if p.last is not None}

    def _current(self, pin: PinRecord) -> PinValue:
        """What the pin was last set to: its line for a plain output, else its level/angle.

        A pwm pin mid-fade is already at its target as far as commands go.
        """
        if pin.config.has_level or pin.config.has_angle:
            return pin.value
        return self.hardware.read(pin.bcm)

    def _write(self, pin: PinRecord, value: PinValue) -> None:
        self.hardware.write(pin.bcm, value)
        pin.remember(value)

    def _spawn(self, make: Callable[[], Awaitable[object]]) -> None:
        async def run() -> None:
            try:
                await make()
            except Exception:
                log.exception("background pin work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _record(pin: PinRecord, old: PinValue, new: PinValue, actor: Actor, *,
                old_known: bool | None = None) -> ChangeRecord:
        """A change from ``old`` to ``new`` (values of the pin's kind; see levels).

        ``old`` None is "not known" for a plain pin, but "detached" for a servo, hence
        ``old_known`` where that matters (the first record of a pin).
        """
        c = pin.config
        known = old_known if old_known is not None else (old is not None or c.has_angle)
        return ChangeRecord(pin=pin.bcm, pin_id=c.id, old=is_on(c, old) if known else None,
                            new=is_on(c, new), actor=actor, at=utc_now(),
                            **record_values(c, old, new, known))


def stamp(moment: float | None) -> str | None:
    return format_time(datetime.fromtimestamp(moment, UTC)) if moment else None
