"""Safe levels from power-on: the ``gpio=`` lines of the Pi's ``config.txt`` for the pins.

Between power-on and the moment pinpanel claims its pins (tens of seconds: firmware, kernel,
systemd, Python) every GPIO sits at its reset state, an input with the SoC's default pull
(up on GPIO 0-8, down on 9-27). An active-low relay board reads a pulled-down or floating
input as "on", so the relay clicks at every boot. The Raspberry Pi firmware can set each pin
long before Linux starts, from ``gpio=`` lines in ``config.txt``; this module derives those
lines from pinpanel's own pin table, so the boot level and pinpanel's level are one decision.

The syntax, as the Raspberry Pi documentation gives it ("GPIO control in config.txt",
https://www.raspberrypi.com/documentation/computers/config_txt.html#gpio-control, first
announced for the firmware of 2018-03-21 in https://forums.raspberrypi.com/viewtopic.php?t=208748):

* ``gpio=PINS=ATTRS``. ``PINS`` is one pin (``3``), a range (``3-4``) or a comma-separated
  list of either (``3-4,6,8``); ``ATTRS`` is one or more comma-separated attributes:
  ``ip`` input, ``op`` output, ``a0``-``a5`` an alternate function, ``dh``/``dl`` drive high
  or low (outputs), ``pu``/``pd`` pull up or down, ``pn`` (or ``np``) no pull.
* Lines apply in order: a later line overrides an earlier one (for the attributes it names).
* ``gpio`` respects the ``[...]`` section headers (filters such as ``[pi4]``); ``[all]``
  ends them. So the lines we print start with ``[all]``, whatever section precedes them.
* The pins are not reserved (the kernel and pinpanel still claim them), and the settings
  take effect a few seconds after power is applied, not at the very first instant.

What each pin gets:

* an output: ``op`` and the level of its start state. ``initial = "off"`` is the off level
  (``dh`` when active_low, else ``dl``); ``"on"`` the on level, so the pin does not go
  off and then on again at start; ``"restore"`` the off level: the firmware cannot know the
  last committed state, so it holds the safe level until pinpanel restores that state.
* an input: ``ip`` and its pull (``pu``, ``pd``, ``pn``).

:func:`differences` reads an existing ``config.txt`` the way the firmware would (lines under
a filter other than ``[all]`` apply only on some boards: one that would leave a pin at
another level is reported too) and says what differs from these lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pinpanel.config import Config, PinConfig

FUNCTIONS = frozenset({"ip", "op", "a0", "a1", "a2", "a3", "a4", "a5"})
DRIVES = frozenset({"dh", "dl"})
#: ``np`` is the documented alias of ``pn``.
PULLS = {"pu": "pu", "pd": "pd", "pn": "pn", "np": "pn"}
_PULL_OF = {"up": "pu", "down": "pd", "none": "pn"}
_PIN_SET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True, slots=True)
class PinSetting:
    """What the firmware does with one pin: its function, drive level and pull (None: unset)."""

    function: str | None = None
    drive: str | None = None
    pull: str | None = None

    def merged(self, attributes: Iterable[str]) -> PinSetting:
        """This setting after a later line's attributes (each overrides its own kind)."""
        function, drive, pull = self.function, self.drive, self.pull
        for attribute in attributes:
            if attribute in FUNCTIONS:
                function = attribute
            elif attribute in DRIVES:
                drive = attribute
            elif attribute in PULLS:
                pull = PULLS[attribute]
        return PinSetting(function, drive, pull)

    def text(self) -> str:
        return ",".join(a for a in (self.function, self.drive, self.pull) if a) or "nothing"


@dataclass(frozen=True, slots=True)
class BootLine:
    """The ``gpio=`` line of one configured pin and the reason for its level."""

    pin: PinConfig
    setting: PinSetting
    why: str

    @property
    def line(self) -> str:
        return f"gpio={self.pin.pin}={self.setting.text()}"


def boot_line(pin: PinConfig) -> BootLine:
    """The line that puts ``pin`` at its start level from power-on (see the module doc)."""
    if not pin.is_output:
        pull = _PULL_OF[pin.pull]
        return BootLine(pin, PinSetting("ip", None, pull), f"input, pull {pin.pull}")
    on, off = ("dl", "dh") if pin.active_low else ("dh", "dl")
    polarity = "active_low" if pin.active_low else "active high"
    level = {"dh": "high", "dl": "low"}
    if pin.initial == "on":
        drive, why = on, f"initial on: on ({level[on]}) from power-on"
    elif pin.initial == "off":
        drive, why = off, f"initial off: off ({level[off]})"
    else:
        drive, why = off, f"initial restore: off ({level[off]}) until pinpanel restores it"
    return BootLine(pin, PinSetting("op", drive, None), f"output, {polarity}, {why}")


def boot_lines(config: Config) -> list[BootLine]:
    return [boot_line(pin) for pin in sorted(config.pins, key=lambda p: p.pin)]


def render(config: Config) -> str:
    """The block to append to ``config.txt``, with a comment per pin."""
    out = [f"# pinpanel boot-config (from {config.source}): each pin at its safe level from",
           "# power-on. Append to config.txt (/boot/firmware/config.txt; /boot/config.txt",
           "# before Bookworm) and reboot; `pinpanel boot-config --check` compares.",
           "# initial = restore starts off: the firmware cannot know the last state.",
           "[all]"]
    for wanted in boot_lines(config):
        out.append(f"# BCM {wanted.pin.pin} {wanted.pin.id} ({wanted.pin.name}): {wanted.why}")
        out.append(wanted.line)
    return "\n".join(out) + "\n"


def parse_pins(text: str) -> list[int]:
    """``3``, ``3-4`` or ``3-4,6,8`` as the pins it names; ValueError if it is none of them."""
    if not _PIN_SET.match(text):
        raise ValueError(f"{text!r} is not a pin, a range or a list of them")
    pins: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low:
            raise ValueError(f"range {part!r} runs backwards")
        pins.extend(range(low, high + 1))
    return pins


@dataclass(frozen=True, slots=True)
class GpioLine:
    """One ``gpio=`` line of a config.txt: where it is, its section, its pins, attributes."""

    number: int
    section: str
    pins: tuple[int, ...]
    attributes: tuple[str, ...]

    @property
    def always(self) -> bool:
        """True when it applies on every board (outside any filter, or under ``[all]``)."""
        return self.section in ("", "all")


def gpio_lines(text: str) -> tuple[list[GpioLine], list[str]]:
    """Every ``gpio=`` line of a config.txt in order, and a note for each one malformed."""
    found: list[GpioLine] = []
    notes: list[str] = []
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, _, value = line.partition("=")
        if key.strip() != "gpio":
            continue
        pin_text, sep, attr_text = value.strip().partition("=")
        attributes = tuple(a.strip() for a in attr_text.split(",") if a.strip())
        unknown = [a for a in attributes if a not in FUNCTIONS | DRIVES | set(PULLS)]
        try:
            pins = parse_pins(pin_text.strip())
        except ValueError as exc:
            notes.append(f"line {number}: {line!r}: {exc}; the firmware ignores it")
            continue
        if not sep or not attributes or unknown:
            why = f"unknown attribute {', '.join(unknown)}" if unknown else "no attributes"
            notes.append(f"line {number}: {line!r}: {why}")
        found.append(GpioLine(number, section, tuple(pins), attributes))
    return found, notes


def effective(lines: Iterable[GpioLine], *, filtered: bool = False) -> dict[int, PinSetting]:
    """Each pin's setting after the lines that apply on every board, in order.

    With ``filtered`` the lines under a filter (``[pi4]``...) apply too: what a board that
    matches every filter would do (a filtered line only matters when no later line for
    every board overrides it).
    """
    settings: dict[int, PinSetting] = {}
    for line in lines:
        if line.always or filtered:
            for pin in line.pins:
                settings[pin] = settings.get(pin, PinSetting()).merged(line.attributes)
    return settings


def _matches(wanted: PinSetting, actual: PinSetting | None) -> bool:
    if actual is None or wanted.function != actual.function:
        return False
    if wanted.function == "op":
        return wanted.drive == actual.drive
    return wanted.pull == actual.pull


def differences(config: Config, text: str) -> Iterator[str]:
    """What differs between ``config``'s boot lines and a config.txt; nothing if they agree."""
    lines, notes = gpio_lines(text)
    yield from notes
    everywhere, filtered = effective(lines), effective(lines, filtered=True)
    for wanted in boot_lines(config):
        bcm = wanted.pin.pin
        label = f"BCM {bcm} ({wanted.pin.id})"
        have = everywhere.get(bcm)
        if have is None:
            yield f"{label}: no gpio= line; add {wanted.line} ({wanted.why})"
        elif not _matches(wanted.setting, have):
            yield (f"{label}: config.txt leaves it {have.text()}, pinpanel wants "
                   f"{wanted.setting.text()}: {wanted.line} ({wanted.why})")
        elif not _matches(wanted.setting, filtered.get(bcm)):
            where = ", ".join(f"line {line.number} under [{line.section}]" for line in lines
                              if bcm in line.pins and not line.always)
            yield (f"{label}: on some boards ({where}) config.txt leaves it "
                   f"{filtered[bcm].text()}, pinpanel wants {wanted.setting.text()}; "
                   f"append {wanted.line} under [all] after it")
