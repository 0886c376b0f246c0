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
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
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
from pinpanel.levels import (
    FADE_STEP_S,
    PinValue,
    check_angle,
    check_fade,
    check_level,
    committed_value,
    fade_level,
    is_on,
    off_value,
    on_value,
    record_values,
)
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
INPUT = Actor("input", "input")
PULSE = Actor("pulse", "pulse")
#: A pin by BCM number (int or digits), by id, or as its configuration (already resolved).
PinRef = int | str | PinConfig


@dataclass(eq=False, slots=True)
class _Pin:
    """Everything the board keeps about one configured pin, in one place."""

    config: PinConfig
    #: Shared by the pins of one interlock group, so "never two on" holds under concurrency.
    lock: asyncio.Lock
    #: The other pins of its interlock group (overlapping groups merged).
    partners: tuple[_Pin, ...] = ()
    #: Its last committed change (None only before the board has started).
    last: Committed | None = None
    #: The newest state queued for commit: ahead of ``last`` until the fsync.
    queued: bool | None = None
    #: The newest commit it is part of, until that commit is published (or fails).
    pending: asyncio.Future[list[Change]] | None = None
    #: The pulse or auto-off timer, its deadline (board clock), and a generation number
    #: that tells a timer which fired late whether a newer command took the pin over.
    timer: Timer | None = None
    pulse_until: float | None = None
    timer_gen: int = 0
    #: pwm and servo: the level or angle the pin is at, or fading to (what was last asked
    #: of it), and the last level above zero or the last angle, which "on" brings back.
    value: PinValue = None
    memory: float | None = None
    #: A fade in progress: its next step, its end (board clock) and its generation.
    fade_timer: Timer | None = None
    fade_until: float | None = None
    fade_gen: int = 0

    @property
    def bcm(self) -> int:
        return self.config.pin


@dataclass(frozen=True, slots=True)
class Applied:
    """What :meth:`Board.apply` did: each asked-for pin as published, and every change.

    ``changes`` are the changes of its one commit (interlock partners switched off
    included), in seq order and contiguous; empty when every pin already was as asked.
    """

    pins: list[PinView]
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """What :meth:`Board.reconfigure` did, by BCM number, and the changes it committed."""

    added: tuple[int, ...]
    reclaimed: tuple[int, ...]
    #: Settings changed that do not reach the line (name, id, pulse_ms...): not re-claimed.
    edited: tuple[int, ...]
    removed: tuple[int, ...]
    changes: list[Change]


class Board:
    """The configured pins, their locks, timers and the path every change takes."""

    def __init__(self, config: Config, hardware: Hardware, store: Store, hub: EventHub,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.hardware = hardware
        self.store = store
        self.hub = hub
        self.clock: Clock = clock or LoopClock()
        self._tasks: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        groups = self._interlock_groups(config)
        self._pins: dict[int, _Pin] = {}
        for pin_config in config.pins:
            group = groups[pin_config.pin]
            shared = next((self._pins[g].lock for g in group if g in self._pins), None)
            self._pins[pin_config.pin] = _Pin(pin_config, shared or asyncio.Lock())
        for pin in self._pins.values():
            pin.partners = tuple(self._pins[g] for g in groups[pin.bcm])
        self._by_id: dict[str, _Pin] = {p.config.id: p for p in self._pins.values()}

    @staticmethod
    def _interlock_groups(config: Config) -> dict[int, tuple[int, ...]]:
        """Each pin's interlock partners, with overlapping groups merged (config order)."""
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

    def resolve(self, ref: PinRef) -> PinConfig:
        """A pin by BCM number (int or digits) or id; :class:`UnknownPinError` otherwise.

        An adapter that resolves a pin first (to answer 404 before reading a body) can
        hand the result to :meth:`command` and friends, which then do not resolve again.
        """
        return self._pin(ref).config

    def _pin(self, ref: PinRef) -> _Pin:
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

    def _committed_view(self, pin: _Pin) -> PinView:
        last = pin.last  # None only before start(): the line is all there is to show
        return self._view(pin, last.new if last else self.hardware.read(pin.bcm), last)

    def _view(self, pin: _Pin, state: bool, last: Committed | None) -> PinView:
        c, until, fade = pin.config, pin.pulse_until, pin.fade_until
        value = committed_value(c, last) if last else self.hardware.read_value(pin.bcm)
        return PinView(
            pin=c.pin, id=c.id, name=c.name, mode=c.mode, state=state,
            active_low=c.active_low, seq=last.seq if last else 0,
            changed_at=last.at if last else None,
            pulse_until=_stamp(until), fade_until=_stamp(fade),
            level=float(value or 0.0) if c.has_level else None,
            angle=None if not c.has_angle or value is None else float(value),
        )

    def last_changes(self) -> dict[int, Committed]:
        """Each pin's last committed change (state, seq, time, actor): no database read."""
        return {p.bcm: p.last for p in self._pins.values() if p.last is not None}

    # -- start and stop ----------------------------------------------------------------------------

    async def start(self, scheduled: Mapping[int, tuple[bool, Actor]] | None = None) -> None:
        """Claim every pin at its start-up level and record what differs from the store.

        ``scheduled`` holds the state of each ``initial = "schedule"`` pin and who decided
        it (the runtime asks automation: the board never imports it); such a pin missing
        from it restores its last state, as ``restore`` does.
        """
        scheduled = scheduled or {}
        self._loop = asyncio.get_running_loop()
        stored = self.store.last_changes()
        for pin in self._pins.values():
            pin.last = stored.get(pin.bcm)
            pin.queued = pin.last.new if pin.last else None
        self.hub.last_seq = self.store.last_seq
        remembered = self.store.remembered()
        for pin in self._pins.values():
            level, angle = remembered.get(pin.bcm, (None, None))
            pin.memory = level if pin.config.has_level else angle
        records: list[ChangeRecord] = []
        levels = self._startup_levels(scheduled)
        for pin in self._pins.values():
            state: PinValue
            if pin.config.is_output:
                state = levels[pin.bcm]
                self.hardware.claim_output(pin.config, state)
                pin.value = state
            else:
                self.hardware.claim_input(pin.config, self._edge_from_any_thread)
                state = self.hardware.read(pin.bcm)
            before = committed_value(pin.config, pin.last) if pin.last else None
            if pin.last is None or before != state:
                decided = scheduled.get(pin.bcm)
                by = decided[1] if decided and decided[0] == is_on(pin.config, state) \
                    else SYSTEM
                records.append(self._record(pin, before, state, by,
                                            old_known=pin.last is not None))
        if records:
            await self._commit(records)
        for pin in self._pins.values():
            auto_off = pin.config.auto_off_ms
            if pin.config.is_output and auto_off and is_on(pin.config, self._current(pin)):
                self._arm_timer(pin, auto_off)
        log.info("board ready: %d pins on %s", len(self._pins), self.hardware.info.name)

    def _startup_levels(self, scheduled: Mapping[int, tuple[bool, Actor]],
                        ) -> dict[int, PinValue]:
        """Each output's start-up value: ``initial`` (``schedule``: on or off as
        ``scheduled`` says, else as ``restore``), or the last committed state or level.

        ``on`` brings a pwm pin up at its remembered level and a servo at its last angle.
        An interlock holds from the first instant too: if the store says two pins of one
        group are on (an interlock added to the config since, say), only one comes up on,
        an explicit ``initial = "on"`` first, else the one changed last.
        """
        levels: dict[int, PinValue] = {}
        for pin in self._pins.values():
            c = pin.config
            if c.is_output:
                decided = scheduled.get(pin.bcm) if c.initial == "schedule" else None
                if c.initial == "on" or (decided is not None and decided[0]):
                    levels[pin.bcm] = on_value(c, pin.memory)
                elif c.initial == "off" or decided is not None or pin.last is None:
                    levels[pin.bcm] = off_value(c)
                else:
                    levels[pin.bcm] = committed_value(c, pin.last)
        for group in self.config.interlocks:
            on = [self._pins[bcm] for bcm in group
                  if is_on(self._pins[bcm].config, levels.get(bcm))]
            if len(on) > 1:
                def rank(pin: _Pin) -> tuple[bool, int]:
                    return pin.config.initial == "on", pin.last.seq if pin.last else 0

                keep = max(on, key=rank)
                for pin in on:
                    if pin is not keep:
                        log.warning("GPIO%d starts off: interlocked with GPIO%d", pin.bcm,
                                    keep.bcm)
                        levels[pin.bcm] = off_value(pin.config)
        return levels

    async def reconfigure(self, config: Config, on_exit: OnExit, actor: Actor,
                          scheduled: Mapping[int, tuple[bool, Actor]] | None = None,
                          ) -> Reconfigured:
        """Take a new config's pins as a diff, live: untouched pins are not touched at all.

        Under every pin's lock, once the commits in flight have landed: a pin whose settings
        are equal keeps its line, state, timers and lock (no re-claim, no write); one whose
        change does not reach the line (name, id, pulse_ms, initial...) only takes the new
        settings; one whose line settings changed (mode, active_low, pull, pwm/servo timing)
        is re-claimed at its ``initial`` level, as at start-up, and so is a new pin; a removed
        pin is released as ``on_exit`` says. Interlocks are then recomputed: of a group that
        now holds two pins on, all but the one changed last go off. What changed is
        committed and published as changes by ``actor``, like any other.
        """
        old = self._pins
        locks = {id(p.lock): p.lock for p in old.values()}
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks.values():  # every lock: no deadlock, nobody else holds many
                await stack.enter_async_context(lock)
            inflight = [p.pending for p in old.values() if p.pending is not None]
            if inflight:
                await asyncio.wait(inflight)
            wanted = {c.pin: c for c in config.pins}
            removed = [p for bcm, p in old.items() if bcm not in wanted]
            line_keys = ("mode", "active_low", "pull", "debounce_ms", "frequency_hz",
                         "min_angle", "max_angle", "min_pulse_ms", "max_pulse_ms", "frame_ms")
            added = [c for c in config.pins if c.pin not in old]
            edited = [c for c in config.pins if c.pin in old and old[c.pin].config != c]
            reclaimed = [c for c in edited if any(
                getattr(c, k) != getattr(old[c.pin].config, k) for k in line_keys)]
            for pin in (*removed, *(old[c.pin] for c in reclaimed)):
                self._cancel_timer(pin)
                if self._cancel_fade(pin):
                    self._write(pin, pin.value)
                self.hardware.release(pin.bcm, on_exit if pin in removed else "keep")
            pins: dict[int, _Pin] = {}
            stored = self.store.last_changes() if added else {}
            remembered = self.store.remembered() if added else {}
            for c in config.pins:
                pin = old.get(c.pin) or _Pin(c, asyncio.Lock(), last=stored.get(c.pin))
                if pin.config.mode != c.mode:
                    pin.memory = pin.value = None
                if c.pin not in old:
                    level, angle = remembered.get(c.pin, (None, None))
                    pin.memory = level if c.has_level else angle
                    pin.queued = pin.last.new if pin.last else None
                pin.config = c
                pins[c.pin] = pin
            groups = self._interlock_groups(config)
            taken: dict[int, asyncio.Lock] = {}
            for pin in pins.values():  # one lock per interlock group; kept where it can be
                shared = next((taken[g] for g in groups[pin.bcm] if g in taken), None)
                if shared is None and any(pin.lock is lock for lock in taken.values()):
                    shared = asyncio.Lock()
                pin.lock = taken[pin.bcm] = shared or pin.lock
            for pin in pins.values():
                pin.partners = tuple(pins[g] for g in groups[pin.bcm])
            self._pins, self.config = pins, config
            self._by_id = {p.config.id: p for p in pins.values()}
            levels = self._startup_levels(scheduled or {}) if added or reclaimed else {}
            records: list[ChangeRecord] = []
            for c in (*added, *reclaimed):
                pin = pins[c.pin]
                before = committed_value(c, pin.last) if pin.last else None
                state: PinValue
                if c.is_output:
                    state = levels[c.pin]
                    self.hardware.claim_output(c, state)
                    pin.value = state
                else:
                    self.hardware.claim_input(c, self._edge_from_any_thread)
                    state = self.hardware.read(c.pin)
                if pin.last is None or before != state:
                    records.append(self._record(pin, before, state, actor,
                                                old_known=pin.last is not None))
                if c.is_output and c.auto_off_ms and is_on(c, state):
                    self._arm_timer(pin, c.auto_off_ms)
            interlock = Actor(actor.name, "interlock", actor.client)
            for group in config.interlocks:
                on = [pins[b] for b in group if pins[b].config.is_output
                      and is_on(pins[b].config, self._current(pins[b]))]
                for pin in sorted(on, key=lambda p: p.last.seq if p.last else 0)[:-1]:
                    before = self._current(pin)
                    self._cancel_timer(pin)
                    self._write(pin, off_value(pin.config))
                    records.append(self._record(pin, before, off_value(pin.config), interlock))
            pending = self._commit(records) if records else None
        changes = await pending if pending is not None else []
        log.info("config applied: %d pins added, %d re-claimed, %d edited in place, "
                 "%d removed, %d left untouched", len(added), len(reclaimed),
                 len(edited) - len(reclaimed), len(removed),
                 len(config.pins) - len(added) - len(edited))
        return Reconfigured(added=tuple(c.pin for c in added),
                            reclaimed=tuple(c.pin for c in reclaimed),
                            edited=tuple(c.pin for c in edited if c not in reclaimed),
                            removed=tuple(p.bcm for p in removed), changes=changes)

    async def close(self, on_exit: OnExit) -> None:
        """Stop timers, switch outputs off if asked (through the one path), release pins."""
        for pin in self._pins.values():
            self._cancel_timer(pin)
            if self._cancel_fade(pin):  # land where the store says it is
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

    # -- the one path --------------------------------------------------------------------------

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
            pending = self._move(pin, target, actor, None, fade)
        return await self._published(pin, pending)

    async def set_angle(self, ref: PinRef, angle: object, actor: Actor) -> PinView:
        """Turn a servo to ``angle``, or detach it (None: no pulses, it goes limp)."""
        pin = self._pin(ref)
        target = check_angle(pin.config, angle)
        async with pin.lock:
            pending = self._move(pin, target, actor, None, 0)
        return await self._published(pin, pending)

    @staticmethod
    def _check(pin: PinConfig, action: str, pulse_ms: int | None) -> None:
        """The one check of a command's arguments, whoever sent it."""
        if not pin.is_output:
            raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is an input; inputs cannot be switched")
        if action not in ACTIONS:
            raise PinValueError(f"unknown action {action!r}; expected on, off or toggle")
        if pulse_ms is not None and not 1 <= pulse_ms <= PULSE_MAX_MS:
            raise PinValueError(f"pulse length must be 1 to {PULSE_MAX_MS} ms, got {pulse_ms}")

    async def _switch(self, pin: _Pin, action: Action, actor: Actor,
                      pulse_ms: int | None) -> PinView:
        """The one path for outputs; the view returned is the one published for the change.

        When there is nothing to change, the pin's last commit is still answered only
        once it is on disk (it may be another caller's, still in flight); with nothing in
        flight either, the answer is the pin as committed.
        """
        self._check(pin.config, action, pulse_ms)
        c = pin.config
        async with pin.lock:
            on = is_on(c, self._current(pin))
            # on, off and toggle mean a level or an angle too: "on" brings back the last one
            # above zero (brightness memory), and a pulse pulses at it.
            if pulse_ms is not None or action == "on" or (action == "toggle" and not on):
                target = on_value(c, pin.memory)
            else:
                target = off_value(c)
            fade = c.fade_ms if pulse_ms is None else 0
            pending = self._move(pin, target, actor, pulse_ms, fade)
        return await self._published(pin, pending)

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
        wanted: dict[int, tuple[_Pin, bool]] = {}
        levels: dict[int, float] = {}
        for ref, state in targets.items():
            pin = self._pin(ref)
            self._check(pin.config, "on", None)
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

    def _apply_locked(self, wanted: dict[int, tuple[_Pin, bool]], actor: Actor,
                      levels: Mapping[int, float]) -> list[asyncio.Future[list[Change]]]:
        """:meth:`apply`'s hardware writes and its one commit; the caller holds the locks.

        A hardware write that fails puts back the pins already written, so nothing that
        is not committed stays changed.
        """
        interlock = Actor(actor.name, "interlock", actor.client)
        # (pin, value before, value after, who); a pwm pin on is at its remembered level
        steps: list[tuple[_Pin, PinValue, PinValue, Actor]] = []
        for pin, state in wanted.values():
            self._cancel_timer(pin)
            if self._cancel_fade(pin):
                self._write(pin, pin.value)
            before = self._current(pin)
            if not state and is_on(pin.config, before):
                steps.append((pin, before, off_value(pin.config), actor))
        for pin, state in wanted.values():
            for other in pin.partners if state else ():
                if other.bcm in wanted or any(o is other for o, _, _, _ in steps):
                    continue
                if self._cancel_fade(other):
                    self._write(other, other.value)
                before = self._current(other)
                if is_on(other.config, before):
                    self._cancel_timer(other)
                    steps.append((other, before, off_value(other.config), interlock))
        for pin, state in wanted.values():
            before = self._current(pin)
            level = levels.get(pin.bcm)
            if state and level is not None and before != level:
                steps.append((pin, before, level, actor))
            elif state and level is None and not is_on(pin.config, before):
                steps.append((pin, before, on_value(pin.config, pin.memory), actor))
        records: list[ChangeRecord] = []
        written: list[tuple[_Pin, PinValue]] = []
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

    def _move(self, pin: _Pin, target: PinValue, actor: Actor, pulse_ms: int | None,
               fade_ms: int) -> asyncio.Future[list[Change]] | None:
        """Under the pin's lock: move ``pin`` to ``target`` and queue what changed.

        Interlocked partners go off first (never two above zero); the pin's timers and any
        fade stop, since a later command takes the pin over.
        """
        c = pin.config
        self._cancel_timer(pin)
        was_fading = self._cancel_fade(pin)
        current = self._current(pin)
        on = is_on(c, target)
        records: list[ChangeRecord] = []
        if on:
            for other in pin.partners:
                if self._cancel_fade(other):
                    self._write(other, other.value)  # a partner fading out is out now
                before = self._current(other)
                if is_on(other.config, before):
                    self._cancel_timer(other)
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

    def _current(self, pin: _Pin) -> PinValue:
        """What the pin was last set to: its line for a plain output, else its level/angle.

        A pwm pin mid-fade is already at its target as far as commands go.
        """
        if pin.config.has_level or pin.config.has_angle:
            return pin.value
        return self.hardware.read(pin.bcm)

    def _write(self, pin: _Pin, value: PinValue) -> None:
        self.hardware.write(pin.bcm, value)
        self._remember(pin, value)

    @staticmethod
    def _remember(pin: _Pin, value: PinValue) -> None:
        c = pin.config
        if c.has_level or c.has_angle:
            pin.value = value
            if is_on(c, value):
                pin.memory = float(value)  # type: ignore[arg-type]

    # -- fades -------------------------------------------------------------------------------

    def _start_fade(self, pin: _Pin, start: float, target: float, ms: int) -> None:
        """Move the hardware from ``start`` to ``target`` over ``ms``, a step at a time."""
        self._remember(pin, target)
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

    def _cancel_fade(self, pin: _Pin) -> bool:
        """Stop a fade where it is; True if one was running."""
        pin.fade_gen += 1
        timer, pin.fade_timer = pin.fade_timer, None
        running = pin.fade_until is not None
        pin.fade_until = None
        if timer is not None:
            timer.cancel()
        return running

    async def _published(self, pin: _Pin, pending: asyncio.Future[list[Change]] | None,
                         ) -> PinView:
        """``pin``'s view as published by ``pending``, once it is; as committed if not in it.

        ``pending`` may hold only other pins' changes (interlock partners switched off for
        a pin that was already on).
        """
        changes = await pending if pending is not None else []
        mine = next((c.pin for c in reversed(changes) if c.committed.pin == pin.bcm), None)
        return mine if mine is not None else self._committed_view(pin)

    async def simulate(self, ref: PinRef, high: bool) -> PinView:
        """Simulated board only: drive an input's line, as a pressed button would."""
        pin = self._pin(ref)
        if pin.config.is_output:
            raise PinModeError(f"GPIO{pin.bcm} ({pin.config.id}) is an output; only inputs "
                               "are driven")
        self.hardware.drive_input(pin.bcm, high)
        return await self._input_changed(pin)

    # -- inputs -----------------------------------------------------------------------------------

    def _edge_from_any_thread(self, bcm: int) -> None:
        """gpiozero's callback: hand the edge to the loop; never touch state from here."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._spawn, lambda: self._input_changed(self._pins[bcm]))

    async def _input_changed(self, pin: _Pin) -> PinView:
        async with pin.lock:
            state = self.hardware.read(pin.bcm)
            if pin.queued == state:
                pending = pin.pending
            else:
                pending = self._commit([self._record(pin, pin.queued, state, INPUT)])
        return await self._published(pin, pending)

    # -- timers ------------------------------------------------------------------------------------

    def _arm_timer(self, pin: _Pin, ms: int) -> None:
        self._cancel_timer(pin)
        gen = pin.timer_gen
        pin.pulse_until = self.clock.time() + ms / 1000
        pin.timer = self.clock.call_later(
            ms / 1000, lambda: self._spawn(lambda: self._timer_fired(pin, gen)))

    def _cancel_timer(self, pin: _Pin) -> None:
        pin.timer_gen += 1
        pin.pulse_until = None
        timer, pin.timer = pin.timer, None
        if timer is not None:
            timer.cancel()

    async def _timer_fired(self, pin: _Pin, gen: int) -> None:
        async with pin.lock:
            if pin.timer_gen != gen:
                return  # a newer command took over this pin
            pin.timer = pin.pulse_until = None
            before = self._current(pin)
            if not is_on(pin.config, before):
                return
            self._cancel_fade(pin)
            self._write(pin, off_value(pin.config))
            pending = self._commit([self._record(pin, before, off_value(pin.config), PULSE)])
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

    @staticmethod
    def _record(pin: _Pin, old: PinValue, new: PinValue, actor: Actor, *,
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
            change = Change(item, self._view(pin, item.new, item))
            self.hub.publish(change)
            changes.append(change)
        if not published.done():
            published.set_result(changes)

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
                log.error("GPIO%d stays off: an interlocked pin is on", pin.bcm)
                continue
            if not last.new:
                self._cancel_timer(pin)
            self._cancel_fade(pin)
            try:
                self._write(pin, value)
            except HardwareError:
                log.exception("reverting GPIO%d failed", pin.bcm)


def _stamp(moment: float | None) -> str | None:
    return format_time(datetime.fromtimestamp(moment, UTC)) if moment else None


__all__ = ["ACTIONS", "SYSTEM", "Action", "Applied", "Board", "Clock", "LoopClock", "PinRef",
           "Reconfigured", "StoreError", "Timer"]
