"""pinpanel on real Linux GPIO: the emulated Raspberry Pi 3B (QEMU raspi3b, Debian's arm64
kernel, pinctrl-bcm2835, /dev/gpiochip0), the real `python3 -m pinpanel serve` with the
default ``auto`` backend inside it, lgpio cross-built from its sdist. The host reads the
BCM2835 GPIO registers (GPFSELn, GPLEV0/1) over QMP and, for start-up glitches, gets every
register write from QEMU's trace. See tests/hil/README.md for what this does and does not prove.

One VM per module; tests run in file order and each starts its own pinpanel (except the
TestDefaultConfig class, which shares one), each with its own data dir on the SD card.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from vm import FSEL_IN, VM, GpioRegs, Recording, replay

pytestmark = pytest.mark.hil

JSON = {"Content-Type": "application/json"}
DEFAULT_PINS = [18, 23, 24]


def toml_config(pins: list[dict[str, object]], on_exit: str = "keep",
                backend: str = "auto") -> str:
    lines = ["[gpio]", f'backend = "{backend}"', f'on_exit = "{on_exit}"', "",
             "[auth]", "enabled = false", ""]
    for p in pins:
        lines.append("[[pins]]")
        for k, v in p.items():
            lines.append(f"{k} = {json.dumps(v)}")  # JSON scalars are valid TOML here
        lines.append("")
    return "\n".join(lines)


def output(pin: int, **kw: object) -> dict[str, object]:
    return {"pin": pin, "name": f"Line {pin}", "mode": "output", **kw}


def post(vm: VM, path: str, body: object = None, expect: int = 200) -> object:
    """POST with a JSON content type (pinpanel refuses non-JSON bodies)."""
    return vm.http_json("POST", path, body if body is not None else {}, headers=JSON,
                        expect=expect)


def changed_bits(a: GpioRegs, b: GpioRegs) -> list[int]:
    diff = a.lev ^ b.lev
    return [i for i in range(54) if diff >> i & 1]


def api_states(vm: VM) -> dict[int, bool]:
    """BCM -> logical state from GET /api/v1/pins (a list, or an object with "pins")."""
    body = vm.http_json("GET", "/api/v1/pins")
    pins = body["pins"] if isinstance(body, dict) else body
    return {int(p["pin"]): p["state"] for p in pins}


def glitches(start: GpioRegs, writes: list, rec: Recording, targets: dict[int, int],
             final: GpioRegs) -> list[str]:
    """Problems of a start-up: a line that was an output at the wrong level at any moment
    (exact, from the register-write trace; and as polled), or did not end as an output at
    its target level."""
    states = replay(start, writes, list(targets))
    problems = []
    for pin, target in targets.items():
        outs = [lev for fn, lev in states[pin] if fn == "out"]
        if not outs and not final.is_output(pin):
            problems.append(f"GPIO{pin}: never became an output: {states[pin]}")
        elif any(lev != target for lev in outs):
            problems.append(f"GPIO{pin}: output passed through the wrong level "
                            f"(trace: {states[pin]})")
        bad = wrong_output_samples(rec, pin, target)
        if bad:
            problems.append(f"GPIO{pin}: polled as output at the wrong level: {bad}")
        if not (final.is_output(pin) and final.level(pin) == target):
            problems.append(f"GPIO{pin}: ended {final.pins([pin])[pin]}, want out/{target}")
    if problems:
        problems.append(rec.describe())
    return problems


def wrong_output_samples(rec: Recording, pin: int, expected: int) -> list[str]:
    return [f"+{t - rec.t_start:.3f}s {fn}/{lev}" for t, fn, lev in rec.history(pin)
            if fn == "out" and lev != expected]


# ----------------------------------------------------------------------------- 0. the rig itself
def test_rig_guest_gpiozero_lgpio_and_host_registers(vm: VM) -> None:
    """Without pinpanel: the guest's gpiozero + lgpio (LGPIOFactory, board 3B) switch BCM17,
    the host sees it in GPFSEL1/GPLEV0 by polling and in the exact register-write trace, and
    the glitch detector used below does flag stock gpiozero's non-atomic output claim."""
    ping = vm.agent("GET", "/ping")
    assert ping["data_mounted"], "SD card not mounted at /data in the guest"
    assert abs(ping["time"] - time.time()) < 120, "guest clock not set from the host"
    info = vm.exec(["sh", "-c", "ls /dev/gpiochip*; grep pinctrl-bcm2835 /sys/kernel/debug/gpio"])
    assert "/dev/gpiochip0" in info["stdout"] and "pinctrl-bcm2835" in info["stdout"], info

    vm.drive({17: 0})
    start = vm.regs()
    assert start.level(17) == 0
    res: dict[str, object] = {}
    with vm.record([17]) as rec, vm.trace_gpio_writes() as writes:
        th = threading.Thread(target=lambda: res.update(vm.drive({17: 1}, hold_s=1.5)))
        th.start()
        th.join(180)
    assert res.get("model") == "3B" and res.get("factory") == "LGPIOFactory", res
    # While held: output, high. After release: QEMU keeps the latched level, the mainline
    # kernel turns the line back into an input.
    hist = [(fn, lev) for _t, fn, lev in rec.history(17)]
    assert ("out", 1) in hist, rec.describe()
    end = vm.regs()
    assert end.level(17) == 1 and end.function(17) == FSEL_IN
    assert rec.samples > 20 and rec.rate_hz > 20, f"QMP polling too slow: {rec.describe()}"

    states = replay(start, writes, [17])[17]
    assert ("out", 1) in states, f"trace missed the claim: {writes}"
    # Positive control of the glitch detector: stock gpiozero 2.0.1 LGPIOPin has no
    # output_with_state, so DigitalOutputDevice(initial_value=True) claims the line at 0
    # and only then sets 1. The exact trace must see the output-low state in between.
    assert ("out", 0) in states and states.index(("out", 0)) < states.index(("out", 1)), (
        f"the detector did not see gpiozero's claim-low-then-set-high: {states}")
    print(f"QMP polling: {rec.describe().splitlines()[0]}; trace states of GPIO17: {states}")

    vm.drive({17: 0})
    assert vm.level(17) == 0


# ------------------------------------------------------------- 1. default config, one pinpanel
@pytest.fixture(scope="class")
def panel(vm: VM) -> Iterator[dict]:
    """One pinpanel for the TestDefaultConfig class: no config file, --no-auth."""
    vm.drive({18: 1, 23: 1, 24: 1})  # so that "comes up off" is visible on the lines
    before = vm.regs()
    with vm.record(DEFAULT_PINS) as rec:
        started = vm.start_pinpanel(None, ["--no-auth"], data_dir="/data/state-default")
    vm.shared_pinpanel = True
    try:
        yield {"started": started, "before": before, "startup": rec}
    finally:
        vm.shared_pinpanel = False
        if vm.running:
            vm.stop_pinpanel("TERM")


class TestDefaultConfig:
    """`pinpanel serve --no-auth` with no config file: the tutorial's BCM 18, 23, 24."""

    def test_auto_chose_lgpio(self, vm: VM, panel: dict) -> None:
        system = vm.http_json("GET", "/api/v1/system")
        assert system["backend"] == "lgpio", system
        assert system["simulated"] is False, system
        assert vm.http_json("GET", "/healthz") == {"status": "ok"}
        log = vm.pinpanel_status()["log"]
        assert "lgpio" in log, f"start-up log does not name the backend:\n{log}"
        assert "gpio backend: lgpio" in log, log
        # The pins really were claimed as outputs and driven to their initial "off".
        regs = vm.regs()
        for pin in DEFAULT_PINS:
            assert regs.is_output(pin) and regs.level(pin) == 0, (
                pin, regs.pins(DEFAULT_PINS), panel["startup"].describe())

    def test_tutorial_contract(self, vm: VM, panel: dict) -> None:
        assert vm.http_json("GET", "/api/list", headers=JSON) == {
            "18": False, "23": False, "24": False}
        before = vm.regs()
        assert post(vm, "/api/toggle/18") == {"Success": True}
        vm.wait_level(18, 1)
        after = vm.regs()
        assert changed_bits(before, after) == [18], (before.pins(DEFAULT_PINS),
                                                     after.pins(DEFAULT_PINS))
        assert after.fsel == before.fsel
        assert vm.http_json("GET", "/api/list", headers=JSON) == {
            "18": True, "23": False, "24": False}
        assert post(vm, "/api/toggle/18") == {"Success": True}
        vm.wait_level(18, 0)
        assert changed_bits(after, vm.regs()) == [18]

    @pytest.mark.parametrize("pin", [18, 23, 24])
    def test_v1_on_off_toggle_move_exactly_that_line(self, vm: VM, panel: dict,
                                                     pin: int) -> None:
        post(vm, f"/api/v1/pins/{pin}/off")
        vm.wait_level(pin, 0)
        for action, level in [("on", 1), ("off", 0), ("toggle", 1), ("toggle", 0),
                              ("put-true", 1), ("put-false", 0)]:
            before = vm.regs()
            if action.startswith("put-"):
                body = vm.http_json("PUT", f"/api/v1/pins/{pin}",
                                    {"state": action == "put-true"}, headers=JSON)
            else:
                body = post(vm, f"/api/v1/pins/{pin}/{action}")
            vm.wait_level(pin, level)
            after = vm.regs()
            assert changed_bits(before, after) == [pin], (action, before.pins(DEFAULT_PINS),
                                                          after.pins(DEFAULT_PINS), body)
            assert after.fsel == before.fsel, action
            state = vm.http_json("GET", f"/api/v1/pins/{pin}")
            assert state["pin"] == pin and state["state"] is bool(level), (action, state)
            assert state["mode"] == "output" and state["active_low"] is False

    def test_pulse_goes_high_then_low(self, vm: VM, panel: dict) -> None:
        post(vm, "/api/v1/pins/18/off")
        vm.wait_level(18, 0)
        with vm.record([18]) as rec:
            post(vm, "/api/v1/pins/18/pulse", {"ms": 300})
            t = time.monotonic()
            while time.monotonic() - t < 10:
                if rec.levels(18) == [0, 1, 0]:
                    break
                time.sleep(0.02)
            time.sleep(0.3)
        assert rec.levels(18) == [0, 1, 0], rec.describe()
        hist = rec.history(18)
        t_high = next(t for t, _fn, lev in hist if lev == 1)
        t_low = next(t for t, _fn, lev in hist if lev == 0 and t > t_high)
        # 300 ms asked; polling resolution is a few ms; the emulated CPU is slow (slower
        # still on a busy host), so only the lower bound is tight.
        assert 0.25 <= t_low - t_high <= 3.0, rec.describe()
        assert vm.http_json("GET", "/api/v1/pins/18")["state"] is False


# ---------------------------------------------------------------------------- 2. active_low
def test_active_low_output_drives_inverted_level(vm: VM) -> None:
    vm.drive({25: 0, 12: 1})
    vm.start_pinpanel(toml_config([output(25, active_low=True, initial="off"),
                                   output(12, initial="off")]),
                      data_dir="/data/state-active-low")
    regs = vm.regs()
    assert regs.is_output(25) and regs.level(25) == 1, "active_low off must be a high line"
    assert regs.is_output(12) and regs.level(12) == 0
    pin = vm.http_json("GET", "/api/v1/pins/25")
    assert pin["state"] is False and pin["active_low"] is True, pin
    for action, level, state in [("on", 0, True), ("off", 1, False), ("toggle", 0, True)]:
        before = vm.regs()
        post(vm, f"/api/v1/pins/25/{action}")
        vm.wait_level(25, level)
        assert changed_bits(before, vm.regs()) == [25], action
        assert vm.http_json("GET", "/api/v1/pins/25")["state"] is state
    st = vm.stop_pinpanel()
    assert st["exit_code"] == 0, st["log"][-3000:]


# ------------------------------------------------------ 3. initial on/restore without glitches
def test_initial_on_and_restore_come_up_at_the_right_level_without_glitch(vm: VM) -> None:
    """Every line must be claimed directly at its final level. Pre-set levels make any
    wrong intermediate level visible: each line starts at the opposite of its target."""
    data = "/data/state-initial"
    # Run A commits: 22 on, 27 off (after having been on).
    vm.start_pinpanel(toml_config([output(22, initial="off"), output(27, initial="off")]),
                      data_dir=data)
    post(vm, "/api/v1/pins/22/on")
    post(vm, "/api/v1/pins/27/on")
    post(vm, "/api/v1/pins/27/off")
    st = vm.stop_pinpanel()
    assert st["exit_code"] == 0, st["log"][-3000:]

    # (pin, config, target line level, pre-set line level = the wrong one)
    cases = [
        (22, output(22, initial="restore"), 1),  # committed on
        (27, output(27, initial="restore"), 0),  # committed off
        (5, output(5, initial="on"), 1),
        (6, output(6, initial="off", active_low=True), 1),  # logical off = high
        (13, output(13, initial="on", active_low=True), 0),  # logical on = low
    ]
    pins = [c[0] for c in cases]
    vm.drive({pin: 1 - target for pin, _cfg, target in cases})
    start = vm.regs()
    assert all(start.level(p) == 1 - t and not start.is_output(p) for p, _c, t in cases)

    with vm.record(pins) as rec, vm.trace_gpio_writes() as writes:
        vm.start_pinpanel(toml_config([c[1] for c in cases]), data_dir=data)
        time.sleep(0.5)
    problems = glitches(start, writes, rec, {p: t for p, _c, t in cases}, vm.regs())
    assert api_states(vm) == {22: True, 27: False, 5: True, 6: False, 13: True}
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------- 4. restore across a reboot
def test_restore_across_reboot(vm: VM) -> None:
    """Set lines, power-cycle the board (sync, then reboot -f with pinpanel still running:
    a committed state must not need a clean shutdown), boot the same SD card, start again."""
    data = "/data/state-reboot"
    cfg = toml_config([output(23), output(24), output(25, active_low=True),
                       output(26, active_low=True)])  # initial defaults to "restore"
    vm.start_pinpanel(cfg, data_dir=data)
    for path in ("23/on", "24/on", "24/off", "25/on", "26/on", "26/off"):
        post(vm, f"/api/v1/pins/{path}")
    want = {23: 1, 24: 0, 25: 0, 26: 1}
    assert vm.levels(list(want)) == want
    boots = vm.boots
    took = vm.reboot(stop_pinpanel=False)
    assert vm.boots == boots + 1
    fresh = vm.regs()
    assert all(not fresh.is_output(p) and fresh.level(p) == 0 for p in want), (
        "a new QEMU should start with every line an input at 0", fresh.pins(list(want)))
    with vm.record(list(want)) as rec, vm.trace_gpio_writes() as writes:
        vm.start_pinpanel(cfg, data_dir=data)
        time.sleep(0.5)
    problems = glitches(fresh, writes, rec, want, vm.regs())
    assert api_states(vm) == {23: True, 24: False, 25: True, 26: False}, "state not restored"
    assert not problems, "\n".join(problems)
    print(f"reboot to agent ready: {took:.1f} s")


# ------------------------------------------------------------------------------- 5. on_exit
@pytest.mark.parametrize("on_exit", ["keep", "off"])
def test_on_exit(vm: VM, on_exit: str) -> None:
    """SIGTERM -> exit 0; keep leaves the lines as they were, off drives them to logical off.
    (Mainline kernels turn a released line into an input; QEMU keeps its latched level, which
    is what is checked. Raspberry Pi OS kernels keep such a line driven.)"""
    vm.drive({17: 0, 16: 1})
    vm.start_pinpanel(toml_config([output(17, initial="off"),
                                   output(16, initial="off", active_low=True)],
                                  on_exit=on_exit), data_dir=f"/data/state-exit-{on_exit}")
    post(vm, "/api/v1/pins/17/on")
    post(vm, "/api/v1/pins/16/on")
    assert vm.levels([17, 16]) == {17: 1, 16: 0}
    with vm.record([17, 16]) as rec:
        st = vm.stop_pinpanel("TERM", timeout=30)
    assert st["exit_code"] == 0 and not st["killed_after_timeout"], st["log"][-3000:]
    want = {17: 1, 16: 0} if on_exit == "keep" else {17: 0, 16: 1}
    assert vm.levels([17, 16]) == want, rec.describe()
    for pin in (17, 16):
        assert rec.levels(pin) in ([want[pin]], [1 - want[pin], want[pin]]), rec.describe()
    print(f"on_exit={on_exit}: after exit {vm.regs().pins([17, 16])}; {rec.describe()}")


# ------------------------------------------------------------- 6. no lgpio: refuse, no fallback
def test_auto_refuses_to_start_without_lgpio(vm: VM) -> None:
    hidden = vm.agent("POST", "/lgpio/hide")
    try:
        assert hidden["import_lgpio_rc"] != 0, hidden
        before = vm.regs()
        vm.start_pinpanel(toml_config([output(19, initial="on")]), data_dir="/data/state-nolg",
                          wait_ready=False)
        st = vm.agent("POST", "/pinpanel/wait", {"timeout": 120}, timeout=180)
        assert not st["running"], "pinpanel kept running without lgpio:\n" + st["log"][-3000:]
        assert st["exit_code"] not in (0, None), st
        log = st["log"]
        assert "lgpio" in log.lower() or "gpiochip" in log.lower(), log[-3000:]
        assert "gpio backend: simulated" not in log, log[-3000:]
        assert vm.regs().pins([19]) == before.pins([19]), "GPIO19 was touched"
        print("refusal:", log.strip().splitlines()[-1] if log.strip() else "(empty log)")
    finally:
        restored = vm.agent("POST", "/lgpio/restore")
    assert restored["import_lgpio_rc"] == 0, restored
