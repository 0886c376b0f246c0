"""Real input edges on the emulated Pi 3B: gpio-sim chips (built by build_image.py, since
Debian's kernel lacks the module) give lines with real edge interrupts, which QEMU's BCM2835
model does not have. The host moves a line as a button would, by writing the sim line's
``pull`` in sysfs through the guest agent; the kernel's GPIO character device reports the
edge, lgpio's alert thread reads it, gpiozero calls back on its thread, and pinpanel hops
onto its event loop, commits and publishes: on the event stream, over MQTT (a mosquitto on
the host, reached from the guest at 10.0.2.2) and in the history. A ``[[rules]]`` rule on
a pressed input drives an output line of the same chip, read back from the chip.

Also: ``[gpio] chip`` by label on the real character device, and ``auto`` picking a chip
labelled ``pinctrl-rp1`` numbered as on a Pi 5's first kernels (gpiochip4), or refusing two
chips that both claim to be the Pi's GPIO. See tests/hil/README.md.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vm import VM

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.hil

SIM = "pinpanel-sim"
BUTTON, BOUNCY, COUNTER, IDLE_DOWN, IDLE_UP = 17, 22, 5, 23, 24
#: A ``[[rules]]`` rule: this input pressed -> that output on (otherwise off), both on the
#: sim chip, so the output is read back from the chip's line.
RULE_IN, RULE_OUT, RULE = 25, 26, "doorbell"
DEBOUNCE_MS = 2000  # far above a burst's length, even on a loaded host
PULSES = 100
#: Pi 5 on its first kernels: four brcmstb banks as gpiochip0-3, RP1 as gpiochip4.
PI5_FILLERS = ["gpio-brcmstb@107d508500", "gpio-brcmstb@107d508520",
               "gpio-brcmstb@107d517c00", "gpio-brcmstb@107d517c20"]


def config(chip: str, pins: list[dict[str, Any]], extra: str = "") -> str:
    lines = ["[gpio]", 'backend = "auto"', f'chip = "{chip}"', "", "[auth]",
             "enabled = false", "", extra, ""]
    for pin in pins:
        lines.append("[[pins]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in pin.items()]
        lines.append("")
    return "\n".join(lines)


def button(pin: int, **kw: Any) -> dict[str, Any]:
    return {"pin": pin, "id": f"in{pin}", "name": f"Input {pin}", "mode": "input", **kw}


class Stream:
    """``GET /api/v1/events`` read on a thread: every ``change`` event, in order."""

    def __init__(self, vm: VM) -> None:
        self.changes: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.conn = http.client.HTTPConnection("127.0.0.1", vm.http_port, timeout=600)
        self.conn.request("GET", "/api/v1/events", headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        self.snapshot = threading.Event()
        self.error: BaseException | None = None
        threading.Thread(target=self._read, daemon=True).start()
        assert self.snapshot.wait(120), "no snapshot on the event stream"

    def _read(self) -> None:
        event, data = "", ""
        try:
            self._lines(event, data)
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed
        except Exception as exc:  # noqa: BLE001 - reported by wait_for
            self.error = exc

    def _lines(self, event: str, data: str) -> None:
        if True:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data += line.split(":", 1)[1].strip()
                elif not line:
                    if event == "snapshot":
                        self.snapshot.set()
                    elif event == "change":
                        with self.cond:
                            self.changes.append(json.loads(data))
                            self.cond.notify_all()
                    event, data = "", ""

    def of(self, pin: int) -> list[dict[str, Any]]:
        with self.cond:
            return [c for c in self.changes if c["pin"]["pin"] == pin]

    def wait_for(self, what: Callable[[list[dict[str, Any]]], bool], timeout: float = 120,
                 describe: str = "") -> list[dict[str, Any]]:
        with self.cond:
            if not self.cond.wait_for(lambda: what(self.changes) or self.error, timeout) \
                    or self.error:
                seen = [(c["pin"]["pin"], c["pin"]["state"]) for c in self.changes]
                raise AssertionError(f"event stream: not {describe} within {timeout} s: {seen}"
                                     f" {self.error!r}")
            return list(self.changes)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(2)  # type: ignore[union-attr]
        self.conn.close()


class Subscriber:
    """``mosquitto_sub`` on the host broker: every ``<base>/<pin id>/state`` message."""

    def __init__(self, broker: LocalBroker, topic: str, out: Path) -> None:
        self.out = out
        self.file = out.open("w")
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v", "-t", topic],
            stdout=self.file, stderr=subprocess.STDOUT)

    def messages(self) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if line]

    def wait(self, topic: str, n: int, timeout: float = 60) -> list[str]:
        """The messages on ``topic`` once there are at least ``n``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            mine = [m for m in self.messages() if m.split(" ", 1)[0] == topic]
            if len(mine) >= n:
                return mine
            time.sleep(0.1)
        raise AssertionError(f"MQTT: {n} messages on {topic} not seen within {timeout} s: "
                             f"{self.messages()}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.file.close()


def pull(vm: VM, chip: str, steps: list[tuple[int, str, float]]) -> dict[str, Any]:
    return vm.agent("POST", "/gpiosim/pull", {"chip": chip, "steps": steps}, timeout=300)


def history(vm: VM, pin: int) -> list[dict[str, Any]]:
    body = vm.http_json("GET", f"/api/v1/history?pin={pin}&limit=1000")
    return sorted(body["items"], key=lambda row: row["seq"])  # type: ignore[index]


def api_state(vm: VM, pin: int) -> bool:
    return bool(vm.http_json("GET", f"/api/v1/pins/{pin}")["state"])  # type: ignore[index]


# ------------------------------------------------------------ one pinpanel on the sim chip
@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with LocalBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture(scope="class")
def sim_panel(vm: VM, broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[dict[str, Any]]:
    made = vm.agent("POST", "/gpiosim/setup", {"chips": [{"label": SIM, "lines": 28}]})
    mqtt = (f'[mqtt]\nenabled = true\nhost = "10.0.2.2"\nport = {broker.port}\n'
            'device_id = "pi"\ndiscovery = false\n')
    sensor = (f'[[sensors]]\nid = "meter"\nkind = "counter"\npin = {COUNTER}\npull = "up"\n'
              "interval_s = 1\n")
    rule = (f'[[rules]]\nid = "{RULE}"\nwhen = {{ pin = "in{RULE_IN}", to = "on" }}\n'
            f'then = [{{ pins = ["lamp"], action = "on" }}]\n'
            f'otherwise = [{{ pins = ["lamp"], action = "off" }}]\n')
    pins = [button(BUTTON, pull="up", active_low=True),
            button(BOUNCY, pull="up", active_low=True, debounce_ms=DEBOUNCE_MS),
            button(IDLE_DOWN, pull="down"), button(IDLE_UP, pull="up"),
            button(RULE_IN, pull="up", active_low=True),
            {"pin": RULE_OUT, "id": "lamp", "name": "Lamp", "mode": "output"}]
    sub = Subscriber(broker, "pinpanel/pi/+/state", tmp_path_factory.mktemp("mqtt") / "sub")
    started = vm.start_pinpanel(config(SIM, pins, "\n".join([mqtt, sensor, rule])),
                                data_dir="/data/state-edges")
    vm.shared_pinpanel = True
    stream = Stream(vm)
    try:
        yield {"chips": made["chips"], "stream": stream, "mqtt": sub, "started": started}
    finally:
        stream.close()
        sub.close()
        vm.shared_pinpanel = False
        if vm.running:
            vm.stop_pinpanel("TERM")


class TestInputsOnASimChip:
    """pinpanel with ``[gpio] chip = "pinpanel-sim"``: the sim chip's lines are its inputs."""

    def test_the_chip_is_found_by_its_label(self, vm: VM, sim_panel: dict[str, Any]) -> None:
        (chip,) = sim_panel["chips"]
        system = vm.http_json("GET", "/api/v1/system")
        assert (system["backend"], system["simulated"]) == ("lgpio", False), system
        assert system["chip"] == {
            "name": chip["chip"], "path": f"/dev/{chip['chip']}", "label": SIM, "lines": 28,
            "chosen_by": "label", "setting": SIM}, system
        assert chip["number"] != 0  # gpiochip0 is the board's own pinctrl-bcm2835
        log = vm.pinpanel_status()["log"]
        assert f'{chip["chip"]} "{SIM}" (28 lines), by its label ([gpio] chip = "{SIM}")' \
            in log, log

    def test_pull_up_and_down_give_their_idle_level(self, vm: VM,
                                                    sim_panel: dict[str, Any]) -> None:
        # pinpanel asked for the bias through lgpio; gpio-sim applies it to the line.
        values = vm.agent("POST", "/gpiosim/values",
                          {"chip": SIM, "lines": [BUTTON, IDLE_DOWN, IDLE_UP]})
        assert values == {str(BUTTON): 1, str(IDLE_DOWN): 0, str(IDLE_UP): 1}, values
        # pull up idles high: off when active_low (a button to ground), on otherwise.
        assert (api_state(vm, BUTTON), api_state(vm, IDLE_DOWN), api_state(vm, IDLE_UP)) == (
            False, False, True)

    def test_a_press_and_a_release_are_one_change_each(self, vm: VM,
                                                       sim_panel: dict[str, Any]) -> None:
        stream: Stream = sim_panel["stream"]
        sub: Subscriber = sim_panel["mqtt"]
        topic = f"pinpanel/pi/in{BUTTON}/state"
        assert sub.wait(topic, 1) == [f"{topic} OFF"]  # its state from start-up
        before = len(history(vm, BUTTON))
        pull(vm, SIM, [(BUTTON, "down", 0)])  # pressed: the line is pulled to ground
        stream.wait_for(lambda _c: len(stream.of(BUTTON)) >= 1, describe="the press")
        assert api_state(vm, BUTTON) is True
        pull(vm, SIM, [(BUTTON, "up", 0)])
        stream.wait_for(lambda _c: len(stream.of(BUTTON)) >= 2, describe="the release")
        changes = stream.of(BUTTON)
        assert [(c["pin"]["state"], c["old"], c["cause"]) for c in changes] == [
            (True, False, "input"), (False, True, "input")], changes
        assert all(c["pin"]["active_low"] for c in changes)
        assert sub.wait(topic, 3) == [f"{topic} OFF", f"{topic} ON", f"{topic} OFF"]
        rows = history(vm, BUTTON)[before:]
        assert [(r["old"], r["new"], r["cause"]) for r in rows] == [
            (False, True, "input"), (True, False, "input")], rows
        assert [r["seq"] for r in rows] == [c["seq"] for c in changes]

    def test_bounces_shorter_than_debounce_give_one_change(self, vm: VM,
                                                           sim_panel: dict[str, Any]) -> None:
        stream: Stream = sim_panel["stream"]
        n = len(stream.of(BOUNCY))
        # A press that bounces: nine flips a few ms apart, ending pressed (pulled down).
        burst = [(BOUNCY, d, 0.005) for d in ["down", "up"] * 4] + [(BOUNCY, "down", 0)]
        took = [pull(vm, SIM, burst)["elapsed"]]
        stream.wait_for(lambda _c: len(stream.of(BOUNCY)) > n, describe="the debounced press")
        release = [(BOUNCY, d, 0.005) for d in ["up", "down"] * 4] + [(BOUNCY, "up", 0)]
        took.append(pull(vm, SIM, release)["elapsed"])
        stream.wait_for(lambda _c: len(stream.of(BOUNCY)) > n + 1,
                        describe="the debounced release")
        # A sentinel: once its press is on the stream, any late report would be too.
        mark = len(stream.of(BUTTON))
        pull(vm, SIM, [(BUTTON, "down", 0)])
        stream.wait_for(lambda _c: len(stream.of(BUTTON)) > mark, describe="the sentinel")
        pull(vm, SIM, [(BUTTON, "up", 0)])
        stream.wait_for(lambda _c: len(stream.of(BUTTON)) > mark + 1, describe="sentinel up")
        assert [c["pin"]["state"] for c in stream.of(BOUNCY)[n:]] == [True, False], (
            f"bursts of {took} s in the guest", stream.of(BOUNCY))

    def test_bounces_longer_than_debounce_each_count(self, vm: VM,
                                                     sim_panel: dict[str, Any]) -> None:
        stream: Stream = sim_panel["stream"]
        n = len(stream.of(BOUNCY))
        before = len(history(vm, BOUNCY))
        # Each flip is held until its change is out: longer than debounce_ms, since lgpio
        # reports an edge only once the line has been stable for that long.
        for i, direction in enumerate(["down", "up", "down", "up"]):
            pull(vm, SIM, [(BOUNCY, direction, 0)])
            stream.wait_for(lambda _c, i=i: len(stream.of(BOUNCY)) > n + i,
                            describe=f"flip {i + 1}")
        assert [c["pin"]["state"] for c in stream.of(BOUNCY)[n:]] == [True, False, True, False]
        rows = history(vm, BOUNCY)[before:]
        assert [(r["new"], r["cause"]) for r in rows] == [
            (True, "input"), (False, "input"), (True, "input"), (False, "input")], rows

    def test_a_counter_counts_every_pulse(self, vm: VM, sim_panel: dict[str, Any]) -> None:
        """A ``counter`` sensor on a sim line: 100 pulses (200 edges, 20 ms apart).

        Not faster: 5 ms apart on a loaded host counted 99 of 100, most likely because two
        edges that come before the kernel has run the GPIO character
        device's interrupt thread for the first are one event (a threaded interrupt's wake-ups
        merge) on the emulated Pi, 15-20x slower than a real one. 20 ms in the guest is
        about 1 ms on a Pi."""
        def total() -> tuple[float | None, str | None]:
            body: Any = vm.http_json("GET", "/api/v1/sensors/meter")
            value = next(r["value"] for r in body["readings"] if r["name"] == "total")
            return value, body["at"]

        start, _at = total()
        steps = [(COUNTER, d, 0.02) for _ in range(PULSES) for d in ("down", "up")]
        pull(vm, SIM, steps)
        end = time.monotonic() + 120
        while (value := total())[0] != (start or 0) + PULSES and time.monotonic() < end:
            time.sleep(0.5)
        assert value[0] == (start or 0) + PULSES, value
        # Two more samples later, it still says exactly that: no edge came late or twice.
        seen = {value[1]}
        while len(seen) < 3 and time.monotonic() < end:
            time.sleep(0.5)
            value = total()
            seen.add(value[1])
        assert value[0] == (start or 0) + PULSES, value

    def test_a_rule_turns_an_output_on_the_chip_on_when_the_input_is_pressed(
            self, vm: VM, sim_panel: dict[str, Any]) -> None:
        """``when = { pin = "in25", to = "on" }`` -> ``then`` lamp on, ``otherwise`` off:
        the press is a real edge on the sim chip, and the rule's change is read back from
        the chip's output line (gpio-sim's ``value`` is what lgpio drives it to)."""
        stream: Stream = sim_panel["stream"]

        def lamp_on_chip() -> int:
            return int(vm.agent("POST", "/gpiosim/values",
                                {"chip": SIM, "lines": [RULE_OUT]})[str(RULE_OUT)])

        assert (lamp_on_chip(), api_state(vm, RULE_OUT)) == (0, False)
        before = len(history(vm, RULE_OUT))
        pull(vm, SIM, [(RULE_IN, "down", 0)])  # pressed
        stream.wait_for(lambda _c: len(stream.of(RULE_OUT)) >= 1, describe="the rule's on")
        assert lamp_on_chip() == 1
        pull(vm, SIM, [(RULE_IN, "up", 0)])  # released: otherwise
        stream.wait_for(lambda _c: len(stream.of(RULE_OUT)) >= 2, describe="the rule's off")
        assert lamp_on_chip() == 0
        presses, lamps = stream.of(RULE_IN), stream.of(RULE_OUT)
        assert [(c["pin"]["state"], c["cause"]) for c in presses] == [
            (True, "input"), (False, "input")], presses
        assert [(c["pin"]["state"], c["cause"], c["actor"]) for c in lamps] == [
            (True, "rule", f"rule:{RULE}"), (False, "rule", f"rule:{RULE}")], lamps
        # Each switch follows the edge that caused it.
        assert presses[0]["seq"] < lamps[0]["seq"] < presses[1]["seq"] < lamps[1]["seq"]
        rows = history(vm, RULE_OUT)[before:]
        assert [(r["old"], r["new"], r["cause"], r["actor"]) for r in rows] == [
            (False, True, "rule", f"rule:{RULE}"), (True, False, "rule", f"rule:{RULE}")], rows
        assert [r["seq"] for r in rows] == [c["seq"] for c in lamps]
        fired: Any = vm.http_json("GET", f"/api/v1/rules/{RULE}")
        assert fired["last_fired"] is not None and fired["stopped"] is None, fired


# --------------------------------------------------------------- auto, on a Pi 5's numbering
def pi5_chips(vm: VM) -> list[dict[str, Any]]:
    """Sim chips so that the one labelled pinctrl-rp1 is gpiochip4, as on a Pi 5's first
    kernels, with brcmstb-like chips below it; gpiochip0 stays the board's own."""
    board = vm.agent("POST", "/gpiosim/setup", {"chips": []})["dev"]  # no sim chip left
    taken = {int(name.removeprefix("gpiochip")) for name in board}
    specs = [{"label": PI5_FILLERS[n], "lines": 8} for n in range(4) if n not in taken]
    made = vm.agent("POST", "/gpiosim/setup",
                    {"chips": [*specs, {"label": "pinctrl-rp1", "lines": 54}]})["chips"]
    assert made[-1]["chip"] == "gpiochip4", made
    return made


def test_auto_finds_a_pi5s_rp1_chip_by_its_label_not_its_number(vm: VM) -> None:
    made = pi5_chips(vm)
    # pinpanel sees the sim chips only: the board's built-in pinctrl-bcm2835 cannot be
    # unbound, and would be a second claimant (the next test).
    vm.agent("POST", "/pinpanel/start", {
        "config": config("auto", [button(BUTTON, pull="up", active_low=True)]),
        "data_dir": "/data/state-pi5", "args": [],
        "only_gpiochips": [c["number"] for c in made]})
    vm.pinpanel_ready_s.append(round(vm.wait_pinpanel_ready(), 2))
    system: Any = vm.http_json("GET", "/api/v1/system")
    assert system["chip"] == {"name": "gpiochip4", "path": "/dev/gpiochip4",
                              "label": "pinctrl-rp1", "lines": 54, "chosen_by": "auto",
                              "setting": "auto"}, system
    log = vm.pinpanel_status()["log"]
    assert ('gpiochip4 "pinctrl-rp1" (54 lines), the Raspberry Pi\'s GPIO, found by its label'
            in log), log
    # And its edges arrive through gpiochip4.
    pull(vm, "pinctrl-rp1", [(BUTTON, "down", 0)])
    end = time.monotonic() + 120
    while not api_state(vm, BUTTON) and time.monotonic() < end:
        time.sleep(0.2)
    assert api_state(vm, BUTTON) is True
    rows = history(vm, BUTTON)
    assert [(r["new"], r["cause"]) for r in rows][-1] == (True, "input"), rows
    st = vm.stop_pinpanel()
    assert st["exit_code"] == 0, st["log"][-3000:]


def test_auto_refuses_two_chips_claiming_to_be_the_pis_gpio(vm: VM) -> None:
    made = pi5_chips(vm)
    assert made[-1]["label"] == "pinctrl-rp1"
    vm.start_pinpanel(config("auto", [button(BUTTON, pull="up")]),
                      data_dir="/data/state-two", wait_ready=False)
    st = vm.agent("POST", "/pinpanel/wait", {"timeout": 240}, timeout=300)
    assert not st["running"] and st["exit_code"] not in (0, None), st["log"][-3000:]
    log = st["log"]
    assert ('[gpio] chip = "auto": 2 chips claim to be the Raspberry Pi\'s GPIO: gpiochip0 '
            '"pinctrl-bcm2835" (54 lines); gpiochip4 "pinctrl-rp1" (54 lines)') in log, log
    assert "will not guess" in log
    assert "gpio backend:" not in log  # it never got as far as a backend
