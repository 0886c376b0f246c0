"""The words and limits every part of the configuration shares.

The ``Literal`` types give a setting's choices (the schema pass, the CLI's flags and the
README's table read them off the field's type); the limits are the board's, named once so
that the config, the API and the MQTT bridge refuse the same values.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Backend = Literal["auto", "lgpio", "rpigpio", "native", "pigpio", "simulated"]
OnExit = Literal["keep", "off", "release"]
Mode = Literal["output", "input", "pwm", "servo"]
MODE_NAMES: tuple[str, ...] = get_args(Mode)
#: How Home Assistant shows a pwm pin (light, fan) or a servo (number, valve, cover); empty
#: is the kind's default (light, number). Plain outputs and inputs take none.
HaType = Literal["", "light", "fan", "number", "valve", "cover"]
#: What a pin is in Apple's Home app. Outputs: switch (default), outlet, lightbulb, fan,
#: garage_door (a pulse opens or closes it), lock (on is unlocked: a door strike); pwm pins:
#: lightbulb (default) or fan; servos: window_covering (default, 0-100 % over the angle
#: range); inputs: contact (default), motion, leak or doorbell (a press rings); none: not in
#: the Home app. Empty is the mode's default.
HomekitType = Literal["", "switch", "outlet", "lightbulb", "fan", "garage_door", "lock",
                      "window_covering", "contact", "motion", "leak", "doorbell", "none"]
Initial = Literal["off", "on", "restore", "schedule"]
Pull = Literal["up", "down", "none"]

#: BCM numbers on the 40-pin header of every Pi since the B+ (GPIO 0-27).
BCM_PINS = range(28)
#: A pulse longer than an hour is almost certainly a typo (ms vs s); refuse it.
PULSE_MAX_MS = 3_600_000
AUTO_OFF_MAX_MS = 86_400_000
FADE_MAX_MS = 600_000
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TUTORIAL_PINS = (18, 23, 24)
