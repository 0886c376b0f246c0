"""The gpiozero adapter: the only module that imports gpiozero.

It picks a pin factory (lgpio on a Pi, Pi 5 included, on the GPIO chip :mod:`pinpanel.chips`
chooses; gpiozero's MockFactory as the simulated board), opens one gpiozero device per
configured pin, and translates library errors into :mod:`pinpanel.errors`. It knows nothing
of the board's rules: logical state is handed in and out, and ``active_low`` is applied by
gpiozero's ``active_high``.

Two gpiozero behaviours are corrected here because they hurt relay users:

* lgpio claims an output at level 0 and only then writes the initial level, so a relay
  meant to come up on glitches off for a moment. :class:`GlitchFreeLGPIOPin` claims the line
  at its final level in one call.
* MockPin keeps every state change forever (about 9 MB per 100k toggles);
  :class:`BoundedMockPin` keeps the last :data:`MOCK_HISTORY` changes. It is a MockPWMPin, so
  the simulated board's pwm pins and servos show their duty cycle and frequency (a servo's
  pulse width is duty x frame) as a real PWM line would.

A pwm pin is a ``PWMOutputDevice`` (level 0.0-1.0), a servo an ``AngularServo`` (an angle, or
None: detached, no pulses, so the servo goes limp). On lgpio both are timed by lgpio's own
thread (software PWM, on any pin); the hardware PWM pins 12, 13, 18 and 19 matter only to
other backends.

Edge callbacks from gpiozero arrive on its background thread on real hardware (and in the
caller's thread on the mock); :class:`Hardware` only forwards them to the callback it was
given, which must hop onto the event loop itself.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gpiozero import AngularServo, DigitalInputDevice, DigitalOutputDevice, PWMOutputDevice
from gpiozero.exc import BadPinFactory, GPIOZeroError, PinFactoryFallback
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from pinpanel.chips import ChipChoice, ChipError, resolve
from pinpanel.config import Backend, OnExit, PinConfig
from pinpanel.errors import BackendUnavailableError, HardwareError, SimulationOnlyError

log = logging.getLogger(__name__)

#: State changes a simulated pin remembers (for tests and the interlock proof).
MOCK_HISTORY = 4096
#: Real factories ``auto`` tries, in gpiozero's order. ``native`` is left out: it pokes the
#: SoC's registers directly, does not know the Pi 5's RP1, and must only run when asked for.
AUTO_ORDER: tuple[Backend, ...] = ("lgpio", "rpigpio", "pigpio")

#: The README Quick start's command for a Pi, printed when lgpio is missing: a venv that sees
#: Debian's python3-lgpio (PyPI's lgpio has no wheels for current Pythons, so a plain venv has
#: none). Run in the pinpanel directory; on an existing .venv it only turns the system
#: packages on.
PI_INSTALL = ("sudo apt install python3-lgpio python3-venv && "
              "python3 -m venv --system-site-packages .venv && .venv/bin/pip install .")

EdgeCallback = Callable[[int], None]


def _lgpio_missing(exc: BaseException) -> bool:
    return isinstance(exc, ImportError) and exc.name == "lgpio"


def _install_lgpio_hint() -> str:
    return ("lgpio is not installed in this Python: on Raspberry Pi OS, in the pinpanel "
            f"directory, run: {PI_INSTALL}")


#: A pwm pin's level, a servo's angle (None: detached) or a plain output's state.
Value = bool | float | None


class BoundedMockPin(MockPWMPin):  # type: ignore[misc]
    """A MockPin whose ``states`` history is a ring buffer, so a long run stays small."""

    def _set_state(self, value: float) -> None:
        # Without a frequency the line is plain digital: keep MockPin's True/False states.
        if self._frequency is None:
            MockPin._set_state(self, value)
        else:
            super()._set_state(value)

    def clear_states(self) -> None:
        self._last_change = time.monotonic()
        self.states = collections.deque([self._make_state(0.0, self._state)], maxlen=MOCK_HISTORY)

    @staticmethod
    def _make_state(timestamp: float, state: bool) -> Any:
        from gpiozero.pins.mock import PinState

        return PinState(timestamp, state)


def _lgpio_factory(chip: str, root: Path) -> tuple[Any, ChipChoice]:
    """Build the lgpio factory on the chip ``[gpio] chip`` names, with a glitch-free output
    claim. lgpio is imported first (lazily), so a Pi without it is told how to install it."""
    import lgpio
    from gpiozero.pins.lgpio import LGPIOFactory, LGPIOPin

    class GlitchFreeLGPIOPin(LGPIOPin):  # type: ignore[misc]
        """Claims an output directly at its initial level: no pulse through 0 on start."""

        def output_with_state(self, state: bool) -> None:
            callback: Any = getattr(self, "_callback", None)
            if callback is not None:
                callback.cancel()
                self._callback = None
            lgpio.gpio_claim_output(self.factory._handle, self._number, int(bool(state)))

    class GlitchFreeLGPIOFactory(LGPIOFactory):  # type: ignore[misc]
        def __init__(self, number: int) -> None:
            super().__init__(chip=number)
            # LGPIOFactory sets pin_class on the instance, which would hide a class attribute.
            self.pin_class = GlitchFreeLGPIOPin

    choice = resolve(chip, root)
    return GlitchFreeLGPIOFactory(choice.chip.number), choice


def _named_factory(name: str, chip: str = "auto", root: Path = Path("/")
                   ) -> tuple[Any, ChipChoice | None]:
    if name == "lgpio":
        return _lgpio_factory(chip, root)
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory(), None
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory(), None
    if name == "native":
        from gpiozero.pins.native import NativeFactory

        return NativeFactory(), None
    raise BackendUnavailableError(f"unknown GPIO backend {name!r}")


def looks_like_pi(root: Path = Path("/")) -> bool:
    """True on a machine with kernel GPIO or a Raspberry Pi device tree.

    On such a machine a failing backend must stop pinpanel: silently serving simulated pins
    would show a garage door as "closed" while nothing is wired to the page.
    """
    if any((root / "dev").glob("gpiochip*")):
        return True
    for model in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        try:
            if "Raspberry Pi" in (root / model).read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


class Factory(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class BackendInfo:
    """What the board is running on, shown at start-up, on the page and in the API."""

    name: str
    simulated: bool
    board: str | None
    #: The GPIO chip lgpio opened; None for the simulated board and register-based backends.
    chip: ChipChoice | None = None


def _open_factory(backend: Backend, root: Path, chip: str
                  ) -> tuple[Any, str, ChipChoice | None]:
    if backend == "simulated":
        return MockFactory(pin_class=BoundedMockPin), "simulated", None
    if backend != "auto":
        try:
            factory, choice = _named_factory(backend, chip, root)
            return factory, backend, choice
        except ChipError:
            raise
        except (ImportError, GPIOZeroError, OSError, RuntimeError) as exc:
            hint = f". {_install_lgpio_hint()}" if _lgpio_missing(exc) else ""
            raise BackendUnavailableError(
                f"GPIO backend {backend!r} failed: {exc}{hint}") from exc
    if not looks_like_pi(root) and chip == "auto":
        return MockFactory(pin_class=BoundedMockPin), "simulated", None
    failures: list[str] = []
    lgpio_missing = False
    # A chip named on purpose is lgpio's business: the register-based backends ignore chips.
    for name in AUTO_ORDER if chip == "auto" else AUTO_ORDER[:1]:
        try:
            factory, choice = _named_factory(name, chip, root)
            return factory, name, choice
        except ChipError as exc:
            if not exc.no_chips:
                raise  # chips are there, but which is the Pi's is unclear: never guess
            failures.append(f"{name}: {exc}")
        except (ImportError, GPIOZeroError, OSError, RuntimeError, BadPinFactory) as exc:
            failures.append(f"{name}: {exc or type(exc).__name__}")
            lgpio_missing = lgpio_missing or (name == "lgpio" and _lgpio_missing(exc))
    found = "this machine has GPIO hardware but no GPIO backend works (" + "; ".join(failures)
    if lgpio_missing:
        # The command goes last, so that it can be copied from the end of the line.
        raise BackendUnavailableError(
            f"{found}). To run without the pins on purpose, set [gpio] backend = "
            f"\"simulated\". {_install_lgpio_hint()}")
    raise BackendUnavailableError(
        f"{found}). Install lgpio (Raspberry Pi OS: sudo apt install python3-lgpio, and a venv "
        "made with --system-site-packages), check the user is in the gpio group, or set "
        "[gpio] backend = \"simulated\" to run without the pins on purpose."
    )


class Hardware:
    """The pins as gpiozero devices over one pin factory, owned by this object alone."""

    def __init__(self, factory: Any, name: str, chip: ChipChoice | None = None) -> None:
        self._factory = factory
        self._devices: dict[int, Any] = {}
        self._active_low: dict[int, bool] = {}
        self._sensor_devices: list[Any] = []
        #: Lines let go of with their level kept (:meth:`release`), claimed again next.
        self._released: set[int] = set()
        self.info = BackendInfo(name=name, simulated=isinstance(factory, MockFactory),
                                board=self._board_model(factory), chip=chip)

    @classmethod
    def open(cls, backend: Backend, root: Path = Path("/"), chip: str = "auto") -> Hardware:
        """Choose and open the pin factory (lgpio on the chip ``[gpio] chip`` names); raises
        :class:`BackendUnavailableError`."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)
            factory, name, choice = _open_factory(backend, root, chip)
        return cls(factory, name, choice)

    @staticmethod
    def _board_model(factory: Any) -> str | None:
        try:
            return str(factory.board_info.model)
        except Exception:  # noqa: BLE001 - purely informative; some factories cannot say
            return None

    # -- claiming ----------------------------------------------------------------------------

    def claim_output(self, pin: PinConfig, state: Value) -> None:
        """Claim an output directly at logical ``state`` (active_low applied by gpiozero).

        ``state`` is a level for a pwm pin and an angle (or None, detached) for a servo.
        """
        try:
            device: Any
            if pin.mode == "pwm":
                device = PWMOutputDevice(pin.pin, active_high=not pin.active_low,
                                         initial_value=float(state or 0.0),
                                         frequency=pin.frequency_hz, pin_factory=self._factory)
            elif pin.mode == "servo":
                angle = None if state is None else float(state)
                device = AngularServo(pin.pin, initial_angle=angle, min_angle=pin.min_angle,
                                      max_angle=pin.max_angle,
                                      min_pulse_width=pin.min_pulse_ms / 1000,
                                      max_pulse_width=pin.max_pulse_ms / 1000,
                                      frame_width=pin.frame_ms / 1000,
                                      pin_factory=self._factory)
            else:
                device = DigitalOutputDevice(pin.pin, active_high=not pin.active_low,
                                             initial_value=bool(state),
                                             pin_factory=self._factory)
        except (GPIOZeroError, ValueError) as exc:
            raise HardwareError(f"cannot claim GPIO{pin.pin} as {pin.mode}: {exc}") from exc
        self._devices[pin.pin] = device
        self._active_low[pin.pin] = pin.active_low
        if pin.pin in self._released:
            # A re-claim (a live config change) of a line this process still holds: lgpio
            # keeps the old request's level for it, so the level is written once more.
            self._released.discard(pin.pin)
            self.write(pin.pin, state)

    def claim_input(self, pin: PinConfig, on_edge: EdgeCallback) -> None:
        """Claim an input with its pull and debounce; ``on_edge(bcm)`` is called on edges.

        ``on_edge`` may run on gpiozero's thread: it must only hand the event over.
        """
        pull_up = {"up": True, "down": False, "none": None}[pin.pull]
        # gpiozero wants active_state only when there is no pull; we apply active_low ourselves
        # on the raw level, so the meaning of "on" does not depend on the pull.
        active_state = True if pull_up is None else None
        bounce = pin.debounce_ms / 1000 if pin.debounce_ms else None
        try:
            device = DigitalInputDevice(pin.pin, pull_up=pull_up, active_state=active_state,
                                        bounce_time=bounce, pin_factory=self._factory)
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot claim GPIO{pin.pin} as an input: {exc}") from exc
        bcm = pin.pin
        device.when_activated = lambda: on_edge(bcm)
        device.when_deactivated = lambda: on_edge(bcm)
        self._devices[pin.pin] = device
        self._active_low[pin.pin] = pin.active_low

    # -- state ---------------------------------------------------------------------------------

    def read(self, bcm: int) -> bool:
        """The pin's logical state, read from the pin itself (never a cached copy)."""
        device = self._device(bcm)
        try:
            if isinstance(device, DigitalOutputDevice | PWMOutputDevice):
                return bool(device.value)
            if isinstance(device, AngularServo):
                return device.value is not None
            return bool(device.pin.state) != self._active_low[bcm]
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot read GPIO{bcm}: {exc}") from exc

    def read_value(self, bcm: int) -> Value:
        """A pwm pin's level or a servo's angle (None: detached), read from the device."""
        device = self._device(bcm)
        try:
            if isinstance(device, AngularServo):
                angle = device.angle
                return None if angle is None else round(float(angle), 6)
            if isinstance(device, PWMOutputDevice):
                return round(float(device.value), 6)
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot read GPIO{bcm}: {exc}") from exc
        return self.read(bcm)

    def write(self, bcm: int, state: Value) -> None:
        """Drive an output to logical ``state``: on/off, a level, or an angle (None: detach).

        Microseconds: fine on the event loop.
        """
        device = self._device(bcm)
        try:
            if isinstance(device, AngularServo):
                if state is None:
                    device.detach()
                else:
                    device.angle = float(state)
            elif isinstance(device, PWMOutputDevice):
                device.value = float(state or 0.0)
            else:
                device.value = bool(state)
        except (GPIOZeroError, ValueError) as exc:
            raise HardwareError(f"cannot write GPIO{bcm}: {exc}") from exc

    def line_pwm(self, bcm: int) -> tuple[float, float | None]:
        """The line's duty cycle (fraction of time high, active_low included) and frequency.

        A servo's pulse width is this duty times its frame; a plain line is 0.0 or 1.0 with
        no frequency. Simulated board: what gpiozero's mock PWM pin was last set to.
        """
        pin = self._devices[bcm].pin if not isinstance(self._devices[bcm], AngularServo) \
            else self._devices[bcm].pwm_device.pin
        frequency = pin.frequency
        return float(pin.state), None if frequency is None else float(frequency)

    def drive_input(self, bcm: int, high: bool) -> None:
        """Simulated board only: drive an input's line as a wired button would."""
        if not self.info.simulated:
            raise SimulationOnlyError("inputs can be driven by hand only on the simulated board")
        pin = self._devices[bcm].pin
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    def level_history(self, bcm: int) -> list[bool]:
        """Simulated board only: the physical levels the line went through, oldest first."""
        if not self.info.simulated:
            raise SimulationOnlyError("level history exists only on the simulated board")
        return [bool(s.state) for s in self._devices[bcm].pin.states]

    def physical_level(self, bcm: int) -> bool:
        """The raw line level (high = True), whatever active_low says."""
        device = self._devices[bcm]
        if isinstance(device, AngularServo):
            return bool(device.pwm_device.pin.state)
        return bool(device.pin.state)

    def release(self, bcm: int, on_exit: OnExit) -> None:
        """Let go of one pin (removed or re-claimed by a live config change) as ``on_exit``
        says: ``keep`` leaves an output's line driven as it is, so a re-claim at the same
        level never glitches; an input is closed."""
        device = self._devices.pop(bcm, None)
        self._active_low.pop(bcm, None)
        if device is None:
            return
        try:
            if isinstance(device, DigitalInputDevice) or on_exit == "release":
                device.close()
            else:
                if on_exit == "off":
                    self._off(device)
                self._forget(device)
                self._released.add(bcm)
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot release GPIO{bcm}: {exc}") from exc

    def _device(self, bcm: int) -> Any:
        try:
            return self._devices[bcm]
        except KeyError:
            raise HardwareError(f"GPIO{bcm} is not claimed (removed from the config)") from None

    # -- sensors: gpiozero's SPI ADC and CPU thermometer (pinpanel.sensors reads them) --------

    def open_adc(self, channel: int, device: int) -> Callable[[], float]:
        """An MCP3008 channel (hardware SPI, ``dtparam=spi=on``); the reader gives 0.0-1.0."""
        from gpiozero import MCP3008

        try:
            adc = MCP3008(channel=channel, device=device, pin_factory=self._factory)
        except (GPIOZeroError, OSError) as exc:
            raise HardwareError(f"cannot open MCP3008 channel {channel} on SPI CE{device}: "
                                f"{exc} (is dtparam=spi=on in config.txt?)") from exc
        self._sensor_devices.append(adc)
        return lambda: float(adc.value)

    def open_cpu_temperature(self) -> Callable[[], float]:
        """The SoC's thermometer (``/sys/class/thermal/thermal_zone0``), in °C."""
        from gpiozero import CPUTemperature

        try:
            cpu = CPUTemperature(pin_factory=self._factory)
        except (GPIOZeroError, OSError) as exc:
            raise HardwareError(f"cannot read the CPU temperature: {exc}") from exc
        self._sensor_devices.append(cpu)
        return lambda: float(cpu.temperature)

    # -- release -------------------------------------------------------------------------------

    def close(self, on_exit: OnExit) -> None:
        """Release the pins as ``[gpio] on_exit`` says; each in its own try, logged.

        ``keep`` and ``off`` leave outputs driven: their devices are not closed (gpiozero's
        close turns a line back into an input) and only the chip handle is dropped. Whether
        the kernel then keeps the line driven is the kernel's choice (Raspberry Pi OS kernels
        do). ``release`` closes every device, leaving the lines as floating inputs.
        """
        for bcm, device in list(self._devices.items()):
            try:
                if isinstance(device, DigitalInputDevice) or on_exit == "release":
                    device.close()
                else:
                    if on_exit == "off":
                        self._off(device)
                    self._forget(device)
            except Exception:
                log.exception("releasing GPIO%d failed", bcm)
        self._devices.clear()
        for sensor in self._sensor_devices:
            try:
                sensor.close()
            except Exception:
                log.exception("closing a sensor device failed")
        self._sensor_devices.clear()
        try:
            if on_exit == "release":
                self._factory.close()
            else:
                self._drop_handle()
        except Exception:
            log.exception("closing the GPIO backend failed")

    @staticmethod
    def _off(device: Any) -> None:
        if isinstance(device, AngularServo):
            device.detach()
        else:
            device.off()

    def _forget(self, device: Any) -> None:
        """Drop a device without touching its line.

        gpiozero closes a device when it is garbage collected, and closing turns the line
        into an input; detaching the pin first leaves the line driven as it is.
        """
        if isinstance(device, AngularServo):
            device = device.pwm_device  # the servo holds its line through this device
        self._factory.release_pins(device, device.pin.info.name)
        device._pin = None

    def _drop_handle(self) -> None:
        """Close the chip handle without resetting lines to inputs first."""
        handle = getattr(self._factory, "_handle", None)
        if handle is not None and self.info.name == "lgpio":
            import lgpio

            lgpio.gpiochip_close(handle)
            self._factory._handle = None
