"""One pin's record on the board, and what may be asked of a pin.

Everything the board keeps about a configured pin (its lock, interlock partners, last
committed change, what is queued, timers and fades) lives in one :class:`PinRecord`, so
the parts of the board never keep parallel dicts that could disagree.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from pinpanel.board.clock import Timer
from pinpanel.changes import Actor, Change, Committed
from pinpanel.config import PULSE_MAX_MS, Config, PinConfig
from pinpanel.errors import PinModeError, PinValueError
from pinpanel.levels import PinValue, is_on

Action = Literal["on", "off", "toggle"]
ACTIONS: tuple[Action, ...] = ("on", "off", "toggle")
DEFAULT_PULSE_MS = 500

SYSTEM = Actor("system", "startup")
INPUT = Actor("input", "input")
PULSE = Actor("pulse", "pulse")
#: A pin by BCM number (int or digits), by id, or as its configuration (already resolved).
PinRef = int | str | PinConfig


@dataclass(eq=False, slots=True)
class PinRecord:
    """Everything the board keeps about one configured pin, in one place."""

    config: PinConfig
    #: Shared by the pins of one interlock group, so "never two on" holds under concurrency.
    lock: asyncio.Lock
    #: The other pins of its interlock group (overlapping groups merged).
    partners: tuple[PinRecord, ...] = ()
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

    def cancel_timer(self) -> None:
        """Stop its pulse/auto-off timer; a timer already due sees a newer generation."""
        self.timer_gen += 1
        self.pulse_until = None
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def cancel_fade(self) -> bool:
        """Stop a fade where it is; True if one was running."""
        self.fade_gen += 1
        timer, self.fade_timer = self.fade_timer, None
        running = self.fade_until is not None
        self.fade_until = None
        if timer is not None:
            timer.cancel()
        return running

    def remember(self, value: PinValue) -> None:
        """Keep a pwm/servo pin's value, and its last one above zero for "on" to bring back."""
        c = self.config
        if c.has_level or c.has_angle:
            self.value = value
            if is_on(c, value):
                self.memory = float(value)  # type: ignore[arg-type]


def interlock_groups(config: Config) -> dict[int, tuple[int, ...]]:
    """Each pin's interlock partners, with overlapping groups merged (config order)."""
    partners: dict[int, set[int]] = {p.pin: set() for p in config.pins}
    for group in config.interlocks:
        merged = set(group).union(*(partners[g] for g in group))
        for bcm in merged:
            partners[bcm] = merged - {bcm}
    return {bcm: tuple(sorted(others)) for bcm, others in partners.items()}


def check_command(pin: PinConfig, action: str, pulse_ms: int | None) -> None:
    """The one check of a command's arguments, whoever sent it."""
    if not pin.is_output:
        raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is an input; inputs cannot be switched")
    if action not in ACTIONS:
        raise PinValueError(f"unknown action {action!r}; expected on, off or toggle")
    if pulse_ms is not None and not 1 <= pulse_ms <= PULSE_MAX_MS:
        raise PinValueError(f"pulse length must be 1 to {PULSE_MAX_MS} ms, got {pulse_ms}")
