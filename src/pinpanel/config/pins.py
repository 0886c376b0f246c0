"""``[[pins]]``: one configured pin, and which of its keys each mode takes.

A pin setting is a field of :class:`PinConfig`, declared as a section's are (see
:mod:`pinpanel.config`); a key that applies to some modes only is listed in the tables
below, so the schema pass refuses it elsewhere and the settings page offers it only there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pinpanel.config.types import (
    AUTO_OFF_MAX_MS,
    BCM_PINS,
    FADE_MAX_MS,
    PULSE_MAX_MS,
    TUTORIAL_PINS,
    HaType,
    HomekitType,
    Initial,
    Mode,
    Pull,
)
from pinpanel.settings import Setting, about, settings_of


@dataclass(frozen=True)
class PinConfig:
    """One configured pin. ``pin`` (BCM) and ``id`` are its two canonical identities."""

    pin: int = field(metadata=about(
        "BCM GPIO number (0-27). Required.", minimum=BCM_PINS.start, maximum=BCM_PINS.stop - 1))
    id: str = field(default="", metadata=about(
        "URL slug; default gpio<N>. Lowercase, starts with a letter."))
    name: str = field(default="", metadata=about(
        "Human name shown on the page; default GPIO <N>."))
    mode: Mode = field(default="output", metadata=about(
        "output (on/off), input, pwm (a level 0.0-1.0: dimming, fan speed) or servo "
        "(an angle, or detached)."))
    active_low: bool = field(default=False, metadata=about(
        "Logical on drives the line low (most relay boards)."))
    initial: Initial = field(default="restore", metadata=about(
        "Outputs at start: off, on, restore (the last committed state, off if none), or "
        "schedule (what its schedules say now: the latest on/off of the last day, else "
        "restore). The line is claimed directly at that level, with no glitch."))
    pull: Pull = field(default="up", metadata=about("Inputs: pull resistor up, down or none."))
    debounce_ms: int = field(default=0, metadata=about(
        "Inputs: ignore edges closer than this.", minimum=0, maximum=10_000))
    pulse_ms: int = field(default=0, metadata=about(
        "Outputs: default pulse length (0: 500 ms).", minimum=0, maximum=PULSE_MAX_MS))
    auto_off_ms: int = field(default=0, metadata=about(
        "Outputs: whatever turns it on, turn it off after this long (0: never).",
        minimum=0, maximum=AUTO_OFF_MAX_MS))
    frequency_hz: int = field(default=100, metadata=about(
        "pwm: PWM frequency. 100 suits LEDs; a motor or fan may want a few thousand "
        "(lgpio times PWM in software, up to 10 kHz).", minimum=1, maximum=10_000))
    min_level: float = field(default=0.0, metadata=about(
        "pwm: the lowest level above off (a fan that stalls below 0.3): a level between 0 "
        "and this is raised to it.", minimum=0.0, maximum=1.0))
    fade_ms: int = field(default=0, metadata=about(
        "pwm: on, off and toggle fade over this long (0: instant).",
        minimum=0, maximum=FADE_MAX_MS))
    min_angle: float = field(default=-90.0, metadata=about(
        "servo: the angle at min_pulse_ms.", minimum=-360.0, maximum=360.0))
    max_angle: float = field(default=90.0, metadata=about(
        "servo: the angle at max_pulse_ms.", minimum=-360.0, maximum=360.0))
    min_pulse_ms: float = field(default=1.0, metadata=about(
        "servo: the pulse width at min_angle.", minimum=0.1, maximum=10.0))
    max_pulse_ms: float = field(default=2.0, metadata=about(
        "servo: the pulse width at max_angle.", minimum=0.1, maximum=10.0))
    frame_ms: float = field(default=20.0, metadata=about(
        "servo: the time from one pulse to the next.", minimum=2.0, maximum=100.0))
    ha_type: HaType = field(default="", metadata=about(
        "Home Assistant entity: pwm pins light (default) or fan; servos number (default), "
        "valve or cover."))
    homekit_type: HomekitType = field(default="", metadata=about(
        "What the pin is in Apple's Home app ([homekit]). Outputs: switch (default), outlet, "
        "lightbulb, fan, garage_door (opening or closing pulses it), lock (on is unlocked: "
        "a door strike); pwm: lightbulb (default, brightness) or fan (speed); servo: "
        "window_covering (default, 0-100 % across min_angle..max_angle); inputs: contact "
        "(default), motion, leak or doorbell (each press rings). none leaves it out."))
    homekit_door: str = field(default="", metadata=about(
        "garage_door: the input (id or BCM) that is on while the door is closed (a reed "
        "switch at the closed end). Empty: the door is reported where it was last sent."))

    def __post_init__(self) -> None:
        # An empty id or name means the default derived from the BCM number.
        if not self.id:
            object.__setattr__(self, "id", f"gpio{self.pin}")
        if not self.name:
            object.__setattr__(self, "name", f"GPIO {self.pin}")

    @property
    def is_output(self) -> bool:
        """Any pin pinpanel drives: plain, pwm and servo outputs alike."""
        return self.mode != "input"

    @property
    def homekit_kind(self) -> str:
        """The Home app's kind of this pin (``none``: left out), the mode's default if unset."""
        return self.homekit_type or HOMEKIT_TYPES[self.mode][0]

    @property
    def has_level(self) -> bool:
        return self.mode == "pwm"

    @property
    def has_angle(self) -> bool:
        return self.mode == "servo"


#: The keys of one ``[[pins]]`` table.
PIN_SETTINGS: tuple[Setting, ...] = settings_of("pins", PinConfig)
PIN_KEYS: dict[str, Setting] = {s.name: s for s in PIN_SETTINGS}

# Keys only some modes take (a new mode-limited key is added to these tables).
_OUTPUT_ONLY = ("initial", "pulse_ms", "auto_off_ms")
_PLAIN_OUTPUT_ONLY = ("homekit_door",)
_INPUT_ONLY = ("pull", "debounce_ms")
_PWM_ONLY = ("frequency_hz", "min_level", "fade_ms")
_SERVO_ONLY = ("min_angle", "max_angle", "min_pulse_ms", "max_pulse_ms", "frame_ms")
#: The keys each mode takes beyond the common ones (pin, id, name, mode, active_low).
_MODE_KEYS: dict[str, tuple[str, ...]] = {
    "output": (*_OUTPUT_ONLY, *_PLAIN_OUTPUT_ONLY), "input": _INPUT_ONLY,
    "pwm": (*_OUTPUT_ONLY, *_PWM_ONLY, "ha_type"),
    "servo": (*_OUTPUT_ONLY, *_SERVO_ONLY, "ha_type"),
}
_KEY_OWNERS: dict[str, str] = {
    **dict.fromkeys(_OUTPUT_ONLY, "outputs"), **dict.fromkeys(_INPUT_ONLY, "inputs"),
    **dict.fromkeys(_PWM_ONLY, "pwm pins"), **dict.fromkeys(_SERVO_ONLY, "servo pins"),
    "ha_type": "pwm and servo pins", "homekit_door": "outputs"}
_HA_TYPES: dict[str, tuple[str, ...]] = {"pwm": ("light", "fan"),
                                         "servo": ("number", "valve", "cover")}
#: The Home app's kinds of each mode; the first is the default.
HOMEKIT_TYPES: dict[str, tuple[str, ...]] = {
    "output": ("switch", "outlet", "lightbulb", "fan", "garage_door", "lock", "none"),
    "pwm": ("lightbulb", "fan", "none"),
    "servo": ("window_covering", "none"),
    "input": ("contact", "motion", "leak", "doorbell", "none"),
}


def pin_keys(mode: str) -> tuple[str, ...]:
    """The keys a ``[[pins]]`` table of ``mode`` takes, in field order (the settings page
    and API offer these, so a new kind's settings come along with its declaration)."""
    own = _MODE_KEYS.get(mode, ())
    return tuple(s.name for s in PIN_SETTINGS if s.name not in _KEY_OWNERS or s.name in own)


def tutorial_pins() -> tuple[PinConfig, ...]:
    """The tutorial's three outputs, BCM 18, 23 and 24."""
    return tuple(PinConfig(pin=n) for n in TUTORIAL_PINS)


def check_mode_keys(table: Mapping[str, Any], values: Mapping[str, Any], mode: Mode,
                     path: str, problems: list[str]) -> None:
    """Keys of another mode, and the servo's ranges that must run the right way."""
    allowed = _MODE_KEYS[mode]
    for key in table:
        if key in _KEY_OWNERS and key not in allowed:
            problems.append(f"{path}.{key}: applies only to {_KEY_OWNERS[key]}")
    ha_type = values.get("ha_type", "")
    if ha_type and mode in _HA_TYPES and ha_type not in _HA_TYPES[mode]:
        problems.append(f"{path}.ha_type: a {mode} pin is one of "
                        f"{', '.join(_HA_TYPES[mode])}, got {ha_type!r}")
    kind = values.get("homekit_type", "")
    if kind and kind not in HOMEKIT_TYPES[mode]:
        problems.append(f"{path}.homekit_type: a{'n' if mode[0] in 'aeiou' else ''} {mode} pin "
                        f"is one of {', '.join(HOMEKIT_TYPES[mode])}, got {kind!r}")
    if "homekit_door" in allowed and values.get("homekit_door") and kind != "garage_door":
        problems.append(f"{path}.homekit_door: applies only with homekit_type = "
                        "\"garage_door\"")
    if mode == "servo":
        lo_a, hi_a = values.get("min_angle", -90.0), values.get("max_angle", 90.0)
        if lo_a == hi_a:
            problems.append(f"{path}.max_angle: must differ from min_angle ({lo_a})")
        lo_p, hi_p = values.get("min_pulse_ms", 1.0), values.get("max_pulse_ms", 2.0)
        frame = values.get("frame_ms", 20.0)
        if lo_p >= hi_p:
            problems.append(f"{path}.max_pulse_ms: must be above min_pulse_ms ({lo_p}), "
                            f"got {hi_p}")
        if hi_p >= frame:
            problems.append(f"{path}.frame_ms: must be longer than max_pulse_ms ({hi_p}), "
                            f"got {frame}")
