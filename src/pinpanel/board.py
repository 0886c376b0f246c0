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
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, Protocol

from pinpanel.changes import (
    Actor,
    Change,
    ChangeRecord,
    Committed,
    PinView,
    format_time,
    utc_now,
)
from pinpanel.config import PULSE_MAX_MS, Config, OnExit, PinConfig
from pinpanel.errors import (
    HardwareError,
    PinModeError,
    PinValueError,
    StoreError,
    UnknownPinError,
)
from pinpanel.events import EventHub
from pinpanel.hardware import Hardware
from pinpanel.store import Store

log = logging.getLogger(__name__)

Action = Literal["on", "off", "toggle"]
ACTIONS: tuple[Action, ...] = ("on", "off", "toggle")
DEFAULT_PULSE_MS = 500


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the board sees it; tests pass a clock they can advance by hand."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class LoopClock:
    """Wall time for timestamps, the running event loop for timers."""

    def time(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


SYSTEM = Actor("system", "startup")


class Board:
    """The configured pins, their locks, timers and the path every change takes."""

    def __init__(self, config: Config, hardware: Hardware, store: Store, hub: EventHub,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.hardware = hardware
        self.store = store
        self.hub = hub
        self.clock: Clock = clock or LoopClock()
        self._pins: dict[int, PinConfig] = {p.pin: p for p in config.pins}
        self._by_id: dict[str, PinConfig] = {p.id: p for p in config.pins}
        self._meta: dict[int, Committed] = {}
        self._pending: dict[int, asyncio.Future[list[Committed]]] = {}
        # The newest state queued for commit per pin (ahead of _meta until the fsync).
        self._queued: dict[int, bool] = {}
        self._timers: dict[int, Timer] = {}
        self._timer_gen: dict[int, int] = dict.fromkeys(self._pins, 0)
        self._pulse_until: dict[int, float] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group: dict[int, tuple[int, ...]] = self._interlock_groups(config)
        # Pins in one interlock group share a lock, so "never two on" holds under concurrency.
        self._locks: dict[int, asyncio.Lock] = {}
        for bcm in self._pins:
            group = self._group[bcm]
            shared = next((self._locks[g] for g in group if g in self._locks), None)
            self._locks[bcm] = shared or asyncio.Lock()

    @staticmethod
    def _interlock_groups(config: Config) -> dict[int, tuple[int, ...]]:
        """Each pin's interlock partners, with overlapping groups merged."""
        partners: dict[int, set[int]] = {p.pin: set() for p in config.pins}
        for group in config.interlocks:
            merged = set(group).union(*(partners[g] for g in group))
            for bcm in merged:
                partners[bcm] = merged - {bcm}
        return {bcm: tuple(sorted(others)) for bcm, others in partners.items()}

    # -- lookup ----------------------------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        return self.hardware.info.simulated

    def resolve(self, ref: int | str) -> PinConfig:
        """A pin by BCM number (int or digits) or id; :class:`UnknownPinError` otherwise."""
        if isinstance(ref, int) and not isinstance(ref, bool):
            pin = self._pins.get(ref)
        else:
            text = str(ref).strip()
            pin = self._pins.get(int(text)) if text.isdecimal() else self._by_id.get(text.lower())
        if pin is None:
            raise UnknownPinError(ref)
        return pin

    def view(self, ref: int | str) -> PinView:
        pin = self.resolve(ref)
        return self._view(pin, self.hardware.read(pin.pin))

    def views(self) -> list[PinView]:
        return [self._view(p, self.hardware.read(p.pin)) for p in self.config.pins]

    def committed_views(self) -> list[PinView]:
        """Every pin as of the last published change (``hub.last_seq``).

        A snapshot that a stream of changes will follow must not run ahead of them: the
        hardware can already show a change whose commit (and event) is still on its way.
        """
        views = []
        for pin in self.config.pins:
            meta = self._meta.get(pin.pin)
            state = meta.new if meta is not None else self.hardware.read(pin.pin)
            views.append(self._view(pin, state, meta))
        return views

    def interlocked_with(self, bcm: int) -> tuple[int, ...]:
        return self._group[bcm]

    def _view(self, pin: PinConfig, state: bool, meta: Committed | None = None) -> PinView:
        meta = meta or self._meta.get(pin.pin)
        until = self._pulse_until.get(pin.pin)
        return PinView(
            pin=pin.pin, id=pin.id, name=pin.name, mode=pin.mode, state=state,
            active_low=pin.active_low, seq=meta.seq if meta else 0,
            changed_at=meta.at if meta else None,
            pulse_until=format_time(datetime.fromtimestamp(until, UTC)) if until else None,
        )

    # -- start and stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim every pin at its start-up level and record what differs from the store."""
        self._loop = asyncio.get_running_loop()
        self._meta = self.store.last_changes()
        self._queued = {bcm: row.new for bcm, row in self._meta.items()}
        self.hub.last_seq = self.store.last_seq
        records: list[ChangeRecord] = []
        levels = self._startup_levels()
        for pin in self.config.pins:
            stored = self._meta.get(pin.pin)
            if pin.is_output:
                state = levels[pin.pin]
                self.hardware.claim_output(pin, state)
            else:
                self.hardware.claim_input(pin, self._edge_from_any_thread)
                state = self.hardware.read(pin.pin)
            if stored is None or stored.new != state:
                records.append(self._record(pin, stored.new if stored else None, state,
                                            SYSTEM))
        if records:
            await self._commit(records)
        for pin in self.config.pins:
            if pin.is_output and pin.auto_off_ms and self.hardware.read(pin.pin):
                self._arm_timer(pin, pin.auto_off_ms)
        log.info("board ready: %d pins on %s", len(self._pins), self.hardware.info.name)

    def _startup_levels(self) -> dict[int, bool]:
        """Each output's start-up level: ``initial``, or the last committed state.

        An interlock holds from the first instant too: if the store says two pins of one
        group are on (an interlock added to the config since, say), only one comes up on,
        an explicit ``initial = "on"`` first, else the one changed last.
        """
        levels: dict[int, bool] = {}
        for pin in self.config.pins:
            if pin.is_output:
                stored = self._meta.get(pin.pin)
                levels[pin.pin] = {"on": True, "off": False}.get(
                    pin.initial, bool(stored and stored.new))
        for group in self.config.interlocks:
            on = [bcm for bcm in group if levels.get(bcm)]
            if len(on) > 1:
                def rank(bcm: int) -> tuple[bool, int]:
                    meta = self._meta.get(bcm)
                    return self._pins[bcm].initial == "on", meta.seq if meta else 0

                keep = max(on, key=rank)
                for bcm in on:
                    if bcm != keep:
                        log.warning("GPIO%d starts off: interlocked with GPIO%d", bcm, keep)
                        levels[bcm] = False
        return levels

    async def close(self, on_exit: OnExit) -> None:
        """Stop timers, switch outputs off if asked (through the one path), release pins."""
        for bcm in list(self._timers):
            self._cancel_timer(bcm)
        if on_exit == "off":
            for pin in self.config.pins:
                if pin.is_output:
                    try:
                        await self.command(pin.pin, "off", Actor("system", "shutdown"))
                    except Exception:
                        log.exception("switching GPIO%d off at exit failed", pin.pin)
        for task in list(self._tasks):
            task.cancel()
        self.hardware.close(on_exit)

    # -- the one path --------------------------------------------------------------------------

    async def command(self, ref: int | str, action: Action, actor: Actor, *,
                      pulse_ms: int | None = None) -> PinView:
        """Switch an output; return it as committed. ``pulse_ms`` turns it off again later."""
        pin = self.resolve(ref)
        if not pin.is_output:
            raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is an input; inputs cannot be switched")
        if action not in ACTIONS:
            raise PinValueError(f"unknown action {action!r}; expected on, off or toggle")
        if pulse_ms is not None and not 1 <= pulse_ms <= PULSE_MAX_MS:
            raise PinValueError(f"pulse length must be 1 to {PULSE_MAX_MS} ms, got {pulse_ms}")
        async with self._locks[pin.pin]:
            self._cancel_timer(pin.pin)
            current = self.hardware.read(pin.pin)
            target = (not current) if action == "toggle" else action == "on"
            if pulse_ms is not None:
                target = True
            records: list[ChangeRecord] = []
            if target:
                for other in self._group[pin.pin]:
                    if self.hardware.read(other):
                        self._cancel_timer(other)
                        self.hardware.write(other, False)
                        records.append(self._record(self._pins[other], True, False,
                                                    Actor(actor.name, "interlock", actor.client)))
            if target != current:
                self.hardware.write(pin.pin, target)
                records.append(self._record(pin, current, target, actor))
            delay = pulse_ms if pulse_ms is not None else (pin.auto_off_ms if target else 0)
            if target and delay:
                self._arm_timer(pin, delay)
            pending = self._commit(records) if records else self._pending.get(pin.pin)
        committed = await pending if pending is not None else []
        mine = next((c for c in reversed(committed) if c.pin == pin.pin), None)
        if mine is not None:
            return self._view(pin, mine.new, mine)
        return self._view(pin, target)

    async def pulse(self, ref: int | str, ms: int | None, actor: Actor) -> PinView:
        """On now, off after ``ms`` (default: the pin's ``pulse_ms``, else 500 ms)."""
        pin = self.resolve(ref)
        length = ms if ms is not None else (pin.pulse_ms or DEFAULT_PULSE_MS)
        return await self.command(pin.pin, "on", actor, pulse_ms=length)

    async def simulate(self, ref: int | str, high: bool) -> PinView:
        """Simulated board only: drive an input's line, as a pressed button would."""
        pin = self.resolve(ref)
        if pin.is_output:
            raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is an output; only inputs are driven")
        self.hardware.drive_input(pin.pin, high)
        return await self._input_changed(pin)

    # -- inputs -----------------------------------------------------------------------------------

    def _edge_from_any_thread(self, bcm: int) -> None:
        """gpiozero's callback: hand the edge to the loop; never touch state from here."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn, lambda: self._input_changed(self._pins[bcm]))

    async def _input_changed(self, pin: PinConfig) -> PinView:
        async with self._locks[pin.pin]:
            state = self.hardware.read(pin.pin)
            last = self._queued.get(pin.pin)
            if last == state:
                pending = self._pending.get(pin.pin)
            else:
                pending = self._commit([self._record(pin, last, state, Actor("input", "input"))])
        committed = await pending if pending is not None else []
        mine = next((c for c in reversed(committed) if c.pin == pin.pin), None)
        return self._view(pin, state, mine)

    # -- timers ------------------------------------------------------------------------------------

    def _arm_timer(self, pin: PinConfig, ms: int) -> None:
        self._cancel_timer(pin.pin)
        gen = self._timer_gen[pin.pin]
        self._pulse_until[pin.pin] = self.clock.time() + ms / 1000
        self._timers[pin.pin] = self.clock.call_later(
            ms / 1000, lambda: self._spawn(lambda: self._timer_fired(pin, gen)))

    def _cancel_timer(self, bcm: int) -> None:
        self._timer_gen[bcm] += 1
        self._pulse_until.pop(bcm, None)
        timer = self._timers.pop(bcm, None)
        if timer is not None:
            timer.cancel()

    async def _timer_fired(self, pin: PinConfig, gen: int) -> None:
        async with self._locks[pin.pin]:
            if self._timer_gen[pin.pin] != gen:
                return  # a newer command took over this pin
            self._timers.pop(pin.pin, None)
            self._pulse_until.pop(pin.pin, None)
            if not self.hardware.read(pin.pin):
                return
            self.hardware.write(pin.pin, False)
            pending = self._commit([self._record(pin, True, False, Actor("pulse", "pulse"))])
        await pending

    def _spawn(self, make: Callable[[], Awaitable[object]]) -> None:
        async def run() -> None:
            try:
                await make()
            except Exception:
                log.exception("background pin work failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- commit and publish ---------------------------------------------------------------------

    def _record(self, pin: PinConfig, old: bool | None, new: bool, actor: Actor) -> ChangeRecord:
        return ChangeRecord(pin=pin.pin, pin_id=pin.id, old=old, new=new, actor=actor,
                            at=utc_now())

    def _commit(self, records: list[ChangeRecord]) -> asyncio.Future[list[Committed]]:
        """Queue records for one durable commit; publish them, in order, once committed."""
        future = self.store.commit(records)
        future.add_done_callback(self._committed)
        for record in records:
            self._pending[record.pin] = future
            self._queued[record.pin] = record.new
        return future

    def _committed(self, future: asyncio.Future[list[Committed]]) -> None:
        if future.cancelled():
            return
        if (error := future.exception()) is not None:
            self._revert(future, error)
            return
        for item in future.result():
            pin = self._pins[item.pin]
            self._meta[pin.pin] = item
            if self._pending.get(pin.pin) is future:
                del self._pending[pin.pin]
            self.hub.publish(Change(item, self._view(pin, item.new, item)))

    def _revert(self, future: asyncio.Future[list[Committed]], error: BaseException) -> None:
        """A commit failed: put the outputs it changed back to their last committed state.

        This runs as the failed future's first done callback, so before any caller awaiting
        it resumes: a 503 is answered with the hardware already back. There is no await
        between a command's hardware write and its queueing, so no pin lock is needed here.
        A pin with a newer change queued behind the failed one is left to that change: it
        either commits (and the line is right) or fails and comes back here.
        """
        log.error("reverting pins to their last committed state: %s", error)
        failed = [b for b, pending in self._pending.items() if pending is future]
        # Pins going back to off first, so an interlock partner going back on finds them off.
        meta_of = self._meta.get
        failed.sort(key=lambda b: bool((row := meta_of(b)) and row.new))
        for bcm in failed:
            del self._pending[bcm]
            meta = self._meta.get(bcm)
            if meta is None:
                self._queued.pop(bcm, None)
                continue
            self._queued[bcm] = meta.new
            pin = self._pins[bcm]
            if not pin.is_output or self.hardware.read(bcm) == meta.new:
                continue
            if meta.new and any(self.hardware.read(o) for o in self._group[bcm]):
                log.error("GPIO%d stays off: an interlocked pin is on", bcm)
                continue
            if not meta.new:
                self._cancel_timer(bcm)
            try:
                self.hardware.write(bcm, meta.new)
            except HardwareError:
                log.exception("reverting GPIO%d failed", bcm)

    def last_changes(self) -> dict[int, Committed]:
        """Each pin's last committed change (state, seq, time, actor): no database read."""
        return dict(self._meta)


__all__ = ["ACTIONS", "SYSTEM", "Action", "Board", "Clock", "LoopClock", "StoreError"]
