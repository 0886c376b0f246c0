"""A config change applied live on the emulated Pi: untouched lines get no write at all.

QEMU's trace of every write to the GPIO block is the proof: a pin whose settings did not
change must keep one (function, level) state through the whole apply, even while its
neighbours in the same GPFSEL register are re-claimed and a new pin is claimed.
"""

from __future__ import annotations

import time

import pytest
from test_real_gpio import JSON, api_states, output, post, toml_config
from vm import VM, replay

pytestmark = pytest.mark.hil


def test_a_live_settings_change_never_touches_the_unchanged_lines(vm: VM) -> None:
    pins = [output(25, active_low=True, initial="off"), output(12, initial="off"),
            output(16, initial="off")]
    vm.start_pinpanel(toml_config(pins), data_dir="/data/state-settings")
    post(vm, "/api/v1/pins/25/on")  # an active-low relay on: its line is low
    post(vm, "/api/v1/pins/12/on")
    before = vm.regs()
    assert before.level(25) == 0 and before.level(12) == 1
    edit = {"pins": [
        {"pin": 25, "name": "Line 25", "active_low": True, "initial": "off"},
        {"pin": 12, "name": "Line 12", "initial": "off"},
        {"pin": 16, "name": "Line 16", "initial": "off", "active_low": True},  # re-claimed
        {"pin": 20, "name": "Line 20", "initial": "on"},  # new
    ]}
    start = vm.regs()
    with vm.trace_gpio_writes() as writes:
        done = vm.http_json("PUT", "/api/v1/settings", edit, headers=JSON)
        time.sleep(0.5)
    assert isinstance(done, dict)
    assert (done["reclaimed"], done["added"], done["edited"]) == ([16], [20], []), done
    states = replay(start, writes, [25, 12, 16, 20])
    # untouched: one state through the whole apply (no re-claim, no write of its level)
    assert states[25] == [("out", 0)], states[25]
    assert states[12] == [("out", 1)], states[12]
    assert writes, "the trace saw the re-claim and the new pin"
    after = vm.regs()
    assert after.is_output(16) and after.level(16) == 1  # active-low off: high
    assert after.is_output(20) and after.level(20) == 1
    assert api_states(vm) == {25: True, 12: True, 16: False, 20: True}
    st = vm.stop_pinpanel()
    assert st["exit_code"] == 0, st["log"][-3000:]
