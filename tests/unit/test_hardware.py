"""Backend choice and the simulated board's bounded memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pinpanel.config import PinConfig
from pinpanel.errors import BackendUnavailableError, SimulationOnlyError
from pinpanel.hardware import MOCK_HISTORY, PI_INSTALL, Hardware, looks_like_pi
from tests.support import REPO


def fake_root(tmp_path: Path, *, chip: bool = False, model: str | None = None) -> Path:
    (tmp_path / "dev").mkdir(parents=True)
    if chip:
        (tmp_path / "dev" / "gpiochip0").touch()
    if model is not None:
        (tmp_path / "proc" / "device-tree").mkdir(parents=True)
        (tmp_path / "proc" / "device-tree" / "model").write_text(model + "\0")
    return tmp_path


def test_a_gpio_chip_or_a_pi_device_tree_means_real_hardware(tmp_path: Path) -> None:
    assert looks_like_pi(fake_root(tmp_path / "a", chip=True))
    assert looks_like_pi(fake_root(tmp_path / "b", model="Raspberry Pi 5 Model B Rev 1.0"))
    assert not looks_like_pi(fake_root(tmp_path / "c", model="QEMU Virtual Machine"))
    assert not looks_like_pi(fake_root(tmp_path / "d"))


def test_auto_without_gpio_hardware_is_the_simulated_board(tmp_path: Path) -> None:
    hardware = Hardware.open("auto", fake_root(tmp_path))
    assert (hardware.info.name, hardware.info.simulated) == ("simulated", True)


def test_auto_on_a_pi_never_falls_back_to_simulated_pins(tmp_path: Path) -> None:
    # This machine has no lgpio, RPi.GPIO or pigpio: a Pi in that state must refuse to start.
    with pytest.raises(BackendUnavailableError) as caught:
        Hardware.open("auto", fake_root(tmp_path, chip=True))
    message = str(caught.value)
    assert "lgpio" in message and "python3-lgpio" in message and "simulated" in message


def test_a_pi_without_lgpio_is_told_the_quick_start_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plain venv on a Pi: lgpio cannot be imported (None in sys.modules makes sure of it
    # whatever this machine has installed).
    monkeypatch.setitem(sys.modules, "lgpio", None)
    with pytest.raises(BackendUnavailableError) as caught:
        Hardware.open("auto", fake_root(tmp_path, model="Raspberry Pi 4 Model B Rev 1.5"))
    message = str(caught.value)
    assert message.endswith(f"run: {PI_INSTALL}")
    assert 'backend = "simulated"' in message
    assert PI_INSTALL == ("sudo apt install python3-lgpio python3-venv && python3 -m venv "
                          "--system-site-packages .venv && .venv/bin/pip install .")
    with pytest.raises(BackendUnavailableError) as named:
        Hardware.open("lgpio")
    assert str(named.value).endswith(f"run: {PI_INSTALL}")
    # The same command, word for word, is the README Quick start's for a Pi.
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert f"\n{PI_INSTALL} && .venv/bin/pinpanel\n" in quick_start


@pytest.mark.parametrize("backend", ["lgpio", "rpigpio", "pigpio"])
def test_an_unavailable_named_backend_is_a_clear_error(backend: str) -> None:
    with pytest.raises(BackendUnavailableError, match=backend):
        Hardware.open(backend)  # type: ignore[arg-type]


def test_mock_pin_history_is_bounded() -> None:
    hardware = Hardware.open("simulated")
    hardware.claim_output(PinConfig(pin=18, id="gpio18", name="x"), False)
    for i in range(MOCK_HISTORY + 500):
        hardware.write(18, i % 2 == 0)
    assert len(hardware.level_history(18)) == MOCK_HISTORY
    hardware.close("release")


def test_inputs_follow_the_pull_and_active_low() -> None:
    hardware = Hardware.open("simulated")
    edges: list[int] = []
    hardware.claim_input(PinConfig(pin=5, id="b", name="b", mode="input", pull="up",
                                   active_low=True), edges.append)
    assert hardware.physical_level(5) is True and hardware.read(5) is False
    hardware.drive_input(5, False)
    assert hardware.read(5) is True and edges == [5]
    hardware.close("release")


def test_real_backends_cannot_be_driven_by_hand(tmp_path: Path) -> None:
    hardware = Hardware.open("simulated")
    hardware.info = type(hardware.info)(name="lgpio", simulated=False, board="5B")
    with pytest.raises(SimulationOnlyError):
        hardware.drive_input(5, True)


def test_the_simulated_board_shows_a_pwm_pins_duty_cycle_and_frequency() -> None:
    hardware = Hardware.open("simulated")
    try:
        hardware.claim_output(PinConfig(pin=18, mode="pwm", frequency_hz=200), 0.25)
        hardware.claim_output(PinConfig(pin=13, mode="pwm", active_low=True), 0.25)
        assert hardware.line_pwm(18) == (0.25, 200.0)
        assert hardware.line_pwm(13) == (0.75, 100.0)  # active low: high the rest of the time
        hardware.write(18, 0.75)
        assert hardware.read_value(18) == 0.75 and hardware.read(18) is True
        assert hardware._devices[18].pin.state == 0.75  # gpiozero's mock PWM pin itself
        hardware.write(18, 0.0)
        assert hardware.read(18) is False
    finally:
        hardware.close("release")


def test_the_simulated_board_shows_a_servos_pulse_width() -> None:
    hardware = Hardware.open("simulated")
    servo = PinConfig(pin=12, mode="servo", min_angle=0, max_angle=180, min_pulse_ms=0.5,
                      max_pulse_ms=2.5, frame_ms=20)
    try:
        hardware.claim_output(servo, None)
        assert hardware.line_pwm(12) == (0.0, None) and hardware.read(12) is False
        widths = {}
        for angle in (0.0, 90.0, 180.0):
            hardware.write(12, angle)
            duty, frequency = hardware.line_pwm(12)
            assert frequency == 50.0
            widths[angle] = round(duty * servo.frame_ms, 6)
        assert widths == {0.0: 0.5, 90.0: 1.5, 180.0: 2.5}
        assert hardware.read_value(12) == 180.0
        hardware.write(12, None)
        assert hardware.line_pwm(12) == (0.0, None)
    finally:
        hardware.close("release")
