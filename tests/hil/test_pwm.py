"""pwm and servo pins on the emulated Pi 3B, measured from QEMU's GPIO write trace.

pinpanel drives a pwm pin through gpiozero's PWMOutputDevice and a servo through
AngularServo on lgpio, whose own thread times the edges in software and writes them through
the kernel's GPIO character device; the BCM2835 model sees each edge as a GPSET0/GPCLR0
write. Every write is in the trace with the host time QEMU logged it at, so the fraction of
time a line is high over a window is measured exactly, up to the emulator's timing: see
``DUTY_TOLERANCE`` and tests/hil/README.md for what it allows and why.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
from vm import GPCLR0, GPSET0, VM, GpioWrite

pytestmark = pytest.mark.hil

PWM, SERVO = 18, 12
#: 20 Hz: a 50 ms period, so an edge late by a few ms of emulator jitter moves the duty by
#: a few percent at most; at 100 Hz the same jitter would be most of the high time.
FREQUENCY_HZ = 20
#: Seconds of trace per measurement (60 periods of the pwm pin, 50 servo frames).
WINDOW_S = 3.0
#: |measured - set| duty allowed. The guest runs ~15-20x slower than a Pi 3 and shares two
#: host cores with other work, so lgpio's edges land late by a few ms, unevenly; over a
#: window of 60 periods that averages to within a few percent (README: measured values).
DUTY_TOLERANCE = 0.08
CONFIG = f"""
[gpio]
backend = "auto"

[auth]
enabled = false

[[pins]]
pin = {PWM}
id = "strip"
mode = "pwm"
frequency_hz = {FREQUENCY_HZ}
initial = "off"

[[pins]]
pin = {SERVO}
id = "flap"
mode = "servo"
initial = "off"
"""


def edges(writes: list[GpioWrite], pin: int) -> list[tuple[float, int]]:
    """The pin's level changes in the trace: (host time, 1 rising / 0 falling)."""
    bit = 1 << pin
    out: list[tuple[float, int]] = []
    for w in writes:
        level = 1 if w.offset == GPSET0 else 0 if w.offset == GPCLR0 else None
        if level is None or not w.value & bit:
            continue
        if not out or out[-1][1] != level:
            out.append((w.t, level))
    return out


def duty(writes: list[GpioWrite], pin: int) -> tuple[float, int]:
    """The median over the window's periods of each period's fraction of time high.

    Each period runs from one rising edge to the next. The median, not the window's mean,
    because the guest is descheduled now and then on a busy host: one late falling edge
    stretches one period's high time by tens of ms, which moves a mean over 60 periods by
    several percent but leaves the median where lgpio put the edges.
    """
    found = edges(writes, pin)
    rising = [i for i, (_, level) in enumerate(found) if level == 1]
    assert len(rising) >= 10, f"too few periods in the trace: {found[:20]}"
    fractions = [
        (found[a + 1][0] - found[a][0]) / (found[b][0] - found[a][0])
        for a, b in pairwise(rising)
    ]
    return statistics.median(fractions), len(fractions)


def pulse_widths_ms(writes: list[GpioWrite], pin: int) -> list[float]:
    found = edges(writes, pin)
    return [(found[i + 1][0] - t) * 1000 for i, (t, level) in enumerate(found[:-1])
            if level == 1]


def traced(vm: VM, seconds: float) -> list[GpioWrite]:
    with vm.trace_gpio_writes() as writes:
        time.sleep(seconds)
    return writes


def put(vm: VM, pin: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = vm.http_json("PUT", f"/api/v1/pins/{pin}", body)
    assert isinstance(answer, dict)
    return answer


@pytest.fixture(scope="module")
def running(vm: VM) -> Iterator[VM]:
    """One pinpanel for the module (the cleanup after each test leaves it running)."""
    vm.start_pinpanel(CONFIG)
    vm.shared_pinpanel = True
    try:
        yield vm
    finally:
        vm.shared_pinpanel = False
        vm.stop_pinpanel("TERM", timeout=30)


@pytest.mark.parametrize("level", [0.25, 0.75])
def test_a_pwm_pin_is_high_that_fraction_of_the_time(running: VM, level: float) -> None:
    answer = put(running, "strip", {"level": level})
    assert (answer["state"], answer["level"]) == (True, level)
    time.sleep(1.0)  # lgpio's thread has the new duty from its next period on
    measured, periods = duty(traced(running, WINDOW_S), PWM)
    print(f"pwm {level:.2f}: measured duty {measured:.3f} over {periods} periods")
    assert abs(measured - level) <= DUTY_TOLERANCE, (measured, periods)


def test_level_zero_leaves_the_line_low(running: VM) -> None:
    put(running, "strip", {"level": 0.0})
    time.sleep(1.0)
    writes = traced(running, 1.0)
    assert [e for e in edges(writes, PWM) if e[1] == 1] == []
    assert running.regs().level(PWM) == 0


def test_a_servo_at_two_angles_gives_two_pulse_widths(running: VM) -> None:
    widths: dict[float, float] = {}
    for angle in (-90.0, 90.0):
        answer = put(running, "flap", {"angle": angle})
        assert answer["angle"] == angle
        time.sleep(1.0)
        found = pulse_widths_ms(traced(running, WINDOW_S), SERVO)
        assert len(found) >= 20, found
        widths[angle] = statistics.median(found)
    print(f"servo pulse widths (median ms): {widths}")
    # Nominal 1 ms and 2 ms: apart by 1 ms. Each median within 0.5 ms of nominal.
    assert widths[90.0] - widths[-90.0] >= 0.5, widths
    assert abs(widths[-90.0] - 1.0) <= 0.5 and abs(widths[90.0] - 2.0) <= 0.5, widths
    put(running, "flap", {"angle": None})  # detached: no more pulses
    time.sleep(1.0)
    assert pulse_widths_ms(traced(running, 1.0), SERVO) == []
