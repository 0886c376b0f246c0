"""Claiming pins: the start-up levels, start, and a new config taken live as a diff.

Start and a reload decide a pin's first value the same way (``initial``, the schedule,
the last committed state, interlocks holding from the first instant).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pinpanel.board.inputs import Inputs
from pinpanel.board.pin import SYSTEM, PinRecord, interlock_groups
from pinpanel.changes import Actor, Change, ChangeRecord
from pinpanel.config import Config, OnExit, PinConfig
from pinpanel.levels import PinValue, committed_value, is_on, off_value, on_value

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """What :meth:`Board.reconfigure` did, by BCM number, and the changes it committed."""

    added: tuple[int, ...]
    reclaimed: tuple[int, ...]
    #: Settings changed that do not reach the line (name, id, pulse_ms...): not re-claimed.
    edited: tuple[int, ...]
    removed: tuple[int, ...]
    changes: list[Change]


class Lifecycle(Inputs):
    """Start the board, and take a new config's pins live."""

    async def start(self, scheduled: Mapping[int, tuple[bool | float, Actor]] | None = None,
                    ) -> None:
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
                by = decided[1] if decided and _matches(pin.config, decided[0], state) \
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

    def _startup_levels(self, scheduled: Mapping[int, tuple[bool | float, Actor]],
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
                if decided is not None and not isinstance(decided[0], bool):
                    levels[pin.bcm] = float(decided[0])  # a scheduled pwm level
                elif c.initial == "on" or (decided is not None and decided[0]):
                    levels[pin.bcm] = on_value(c, pin.memory)
                elif c.initial == "off" or decided is not None or pin.last is None:
                    levels[pin.bcm] = off_value(c)
                else:
                    levels[pin.bcm] = committed_value(c, pin.last)
        for group in self.config.interlocks:
            on = [self._pins[bcm] for bcm in group
                  if is_on(self._pins[bcm].config, levels.get(bcm))]
            if len(on) > 1:
                def rank(pin: PinRecord) -> tuple[bool, int]:
                    return pin.config.initial == "on", pin.last.seq if pin.last else 0

                keep = max(on, key=rank)
                for pin in on:
                    if pin is not keep:
                        log.warning("GPIO%d starts off: interlocked with GPIO%d", pin.bcm,
                                    keep.bcm)
                        levels[pin.bcm] = off_value(pin.config)
        return levels

    async def reconfigure(self, config: Config, on_exit: OnExit, actor: Actor,
                          scheduled: Mapping[int, tuple[bool | float, Actor]] | None = None,
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
                pin.cancel_timer()
                if pin.cancel_fade():
                    self._write(pin, pin.value)
                self.hardware.release(pin.bcm, on_exit if pin in removed else "keep")
            pins: dict[int, PinRecord] = {}
            stored = self.store.last_changes() if added else {}
            remembered = self.store.remembered() if added else {}
            for c in config.pins:
                pin = old.get(c.pin) or PinRecord(c, asyncio.Lock(), last=stored.get(c.pin))
                if pin.config.mode != c.mode:
                    pin.memory = pin.value = None
                if c.pin not in old:
                    level, angle = remembered.get(c.pin, (None, None))
                    pin.memory = level if c.has_level else angle
                    pin.queued = pin.last.new if pin.last else None
                pin.config = c
                pins[c.pin] = pin
            groups = interlock_groups(config)
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
                    pin.cancel_timer()
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


def _matches(config: PinConfig, decided: bool | float, state: PinValue) -> bool:
    """Whether the pin came up as its schedule said (so the schedule is who set it)."""
    if isinstance(decided, bool):
        return decided == is_on(config, state)
    return state == decided
