"""The Raspberry Pi's 40-pin header as the page draws it: where each configured pin is.

People wire relays by physical position ("pin 12"), while pinpanel, gpiozero and the API
speak BCM numbers ("GPIO 18"). The diagram joins the two: every header position in its
place, power and ground drawn as such, and each configured pin labelled with its name and
live state; an output's label is a button that toggles it. A GPIO a counter sensor claims
is marked with the sensor's name: it is not in the pin table (a counter's input is its own),
yet it is taken, and someone wiring a relay needs to see that before choosing it.

This module is only geometry and facts; ``templates/header_diagram.html`` draws them, so
the buttons are ordinary forms (they work without JavaScript and get the same CSRF field
as every other form on the page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pinpanel.changes import PinView
from pinpanel.sensor_config import SensorConfig

Kind = Literal["gpio", "3v3", "5v", "gnd"]

#: What sits at each physical position (1-40) of every 40-pin Pi (B+ through Pi 5):
#: a BCM number for a GPIO, else the supply it carries.
HEADER: tuple[int | Kind, ...] = (
    "3v3", "5v", 2, "5v", 3, "gnd", 4, 14, "gnd", 15,
    17, 18, 27, "gnd", 22, 23, "3v3", 24, 10, "gnd",
    9, 25, 11, 8, "gnd", 7, 0, 1, 5, "gnd",
    6, 12, 13, "gnd", 19, 16, 26, 20, "gnd", 21,
)
POWER_LABELS = {"3v3": "3V3", "5v": "5V", "gnd": "GND"}
#: The GPIOs with a hardware PWM channel on most Pis (PWM0/PWM1 on 12/18 and 13/19): where a
#: pwm pin or servo keeps its timing even when the CPU is busy, with a backend that uses it.
PWM_CAPABLE = frozenset({12, 13, 18, 19})

# Geometry in SVG user units: two columns of pins, labels outside them.
WIDTH = 300
ROW = 28
TOP = 10
PIN_X = (138, 162)
RADIUS = 9
LABEL_W = 114
#: From a pin's centre to the near edge of its label: clear of the board drawn around the pins.
LABEL_GAP = 21
LABEL_H = 24
#: The longest counter name a plain label shows whole (11px text in a label's width).
LABEL_CHARS = 17
HEIGHT = TOP * 2 + ROW * 20


@dataclass(frozen=True)
class Slot:
    """One header position, with the configured pin on it if any, or the counter sensor
    whose input it is."""

    number: int
    kind: Kind
    bcm: int | None
    view: PinView | None
    counter: SensorConfig | None = None

    @property
    def left(self) -> bool:
        return self.number % 2 == 1

    @property
    def cx(self) -> int:
        return PIN_X[0] if self.left else PIN_X[1]

    @property
    def cy(self) -> int:
        return TOP + ROW * ((self.number - 1) // 2) + ROW // 2

    @property
    def label_x(self) -> int:
        """Left edge of the label box: outside the pin, towards the board's edge."""
        return self.cx - LABEL_GAP - LABEL_W if self.left else self.cx + LABEL_GAP

    @property
    def label_y(self) -> int:
        return self.cy - LABEL_H // 2

    @property
    def text_x(self) -> int:
        """Anchor of a plain label: its end on the left column, its start on the right."""
        return self.cx - LABEL_GAP if self.left else self.cx + LABEL_GAP

    @property
    def text(self) -> str:
        """What the label says when no pin is configured here."""
        return POWER_LABELS[self.kind] if self.kind != "gpio" else f"GPIO{self.bcm}"

    @property
    def counter_label(self) -> str:
        """A counter's name as its plain label shows it, cut to fit the label's width."""
        name = self.counter.name if self.counter is not None else ""
        return name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "\u2026"

    @property
    def pwm_capable(self) -> bool:
        return self.bcm in PWM_CAPABLE

    @property
    def css(self) -> str:
        pwm = " hd-pwm-capable" if self.pwm_capable else ""
        if self.counter is not None:
            return f"hd-{self.kind} hd-counter{pwm}"
        if self.view is None:
            return f"hd-{self.kind}{pwm}"
        return f"hd-pin hd-{self.view.mode} {'on' if self.view.state else 'off'}{pwm}"


def slots(views: Iterable[PinView], sensors: Iterable[SensorConfig] = ()) -> list[Slot]:
    """All 40 positions, configured pins attached by BCM number, and the GPIOs that
    counter sensors among ``sensors`` claim."""
    by_bcm = {view.pin: view for view in views}
    counters = {s.pin: s for s in sensors if s.kind == "counter"}
    out: list[Slot] = []
    for number, what in enumerate(HEADER, start=1):
        if isinstance(what, int):
            out.append(Slot(number, "gpio", what, by_bcm.get(what), counters.get(what)))
        else:
            out.append(Slot(number, what, None, None))
    return out


def position_of(bcm: int) -> int:
    """The physical header position of a BCM GPIO number."""
    return HEADER.index(bcm) + 1
