"""What a pin's value is, by kind: on/off, a pwm level, or a servo angle.

A plain output is on or off. A pwm pin has a level from 0.0 to 1.0 (on means above zero); a
servo has an angle, or none at all (detached: no pulses, the servo goes limp; on means
attached). The board keeps one value per pin and asks this module what "on", "off" and a
requested level or angle mean for that pin, so every adapter gets the same answers and the
same range errors (a 422 from HTTP, a logged refusal from MQTT).
"""

from __future__ import annotations

import math
from typing import Any

from pinpanel.changes import Committed
from pinpanel.config import FADE_MAX_MS, PinConfig
from pinpanel.errors import PinModeError, PinValueError

#: A plain output's state, a pwm level, or a servo angle (None: detached).
PinValue = bool | float | None
#: How often a fade moves the hardware: 50 steps a second is smooth to the eye and cheap.
FADE_STEP_S = 0.02


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PinValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float is out of any range
        number = math.inf
    if not math.isfinite(number):
        raise PinValueError(f"{what} must be a finite number, got {value!r}")
    return number


def check_level(pin: PinConfig, level: object) -> float:
    """A requested level as the pin will take it; :class:`PinValueError` out of range.

    A level between 0 and ``min_level`` is raised to ``min_level``: a fan that stalls below
    it is either off or turning.
    """
    if not pin.has_level:
        raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is {_kind(pin)}; only pwm pins take a "
                           "level")
    number = _number(level, "level")
    if not 0.0 <= number <= 1.0:
        raise PinValueError(f"level must be 0.0 to 1.0, got {level}")
    if 0.0 < number < pin.min_level:
        return pin.min_level
    return number


def angle_range(pin: PinConfig) -> tuple[float, float]:
    """The lowest and highest angle the servo takes (min_angle may be above max_angle)."""
    return min(pin.min_angle, pin.max_angle), max(pin.min_angle, pin.max_angle)


def check_angle(pin: PinConfig, angle: object) -> float | None:
    """A requested angle (None: detach); :class:`PinValueError` outside the servo's range."""
    if not pin.has_angle:
        raise PinModeError(f"GPIO{pin.pin} ({pin.id}) is {_kind(pin)}; only servos take an "
                           "angle")
    if angle is None:
        return None
    number = _number(angle, "angle")
    low, high = angle_range(pin)
    if not low <= number <= high:
        raise PinValueError(f"angle must be {low:g} to {high:g}, got {angle}")
    return number


def check_fade(ms: object) -> int:
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 <= ms <= FADE_MAX_MS:
        raise PinValueError(f"fade length must be 0 to {FADE_MAX_MS} ms, got {ms!r}")
    return ms


def _kind(pin: PinConfig) -> str:
    return {"output": "an on/off output", "input": "an input"}.get(pin.mode, f"a {pin.mode} pin")


def is_on(pin: PinConfig, value: PinValue) -> bool:
    """The ``state`` of a value: a level above zero, an attached servo, an output on."""
    if pin.has_level:
        return bool(value and float(value) > 0.0)
    if pin.has_angle:
        return value is not None
    return bool(value)


def off_value(pin: PinConfig) -> PinValue:
    """Off: level 0, a detached servo, an output off."""
    if pin.has_level:
        return 0.0
    if pin.has_angle:
        return None
    return False


def default_angle(pin: PinConfig) -> float:
    """Where a servo goes when switched on with no angle remembered: its middle."""
    low, high = angle_range(pin)
    return (low + high) / 2


def on_value(pin: PinConfig, memory: float | None) -> PinValue:
    """On: the remembered level or angle ("brightness memory"), else full or the middle."""
    if pin.has_level:
        return memory if memory is not None and memory > 0 else 1.0
    if pin.has_angle:
        return memory if memory is not None else default_angle(pin)
    return True


def committed_value(pin: PinConfig, last: Committed) -> PinValue:
    """The value a committed change left the pin at.

    A row from before levels existed (or from when the pin was a plain output) has no level:
    on then means full and off zero.
    """
    if pin.has_level:
        if last.new_level is not None:
            return last.new_level
        return 1.0 if last.new else 0.0
    if pin.has_angle:
        if last.new_angle is not None or not last.new:
            return last.new_angle
        return default_angle(pin)
    return last.new


def record_values(pin: PinConfig, old: PinValue, new: PinValue,
                  old_known: bool = True) -> dict[str, Any]:
    """The level or angle fields of a change record (none for a plain pin)."""
    if pin.has_level:
        return {"old_level": float(old or 0.0) if old_known else None,
                "new_level": float(new or 0.0)}
    if pin.has_angle:
        return {"old_angle": old if old_known else None, "new_angle": new}
    return {}


def fade_level(start: float, target: float, t0: float, t1: float, now: float) -> float:
    """The level a fade from ``start`` at ``t0`` to ``target`` at ``t1`` has at ``now``."""
    if now >= t1 or t1 <= t0:
        return target
    fraction = max(0.0, (now - t0) / (t1 - t0))
    return start + (target - start) * fraction


__all__ = [
    "FADE_MAX_MS", "FADE_STEP_S", "PinValue", "angle_range", "check_angle", "check_fade",
    "check_level", "committed_value", "default_angle", "fade_level", "is_on", "off_value",
    "on_value", "record_values",
]
