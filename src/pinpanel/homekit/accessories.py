"""One HomeKit accessory per pin or sensor: what it shows, and what a write asks of the board.

An accessory never changes a pin itself. A write from the Home app becomes a
:data:`Request`, a function of the actor that calls the board (``command``, ``set_level``,
``set_angle`` or ``pulse``), handed to the bridge, which runs it on the one path and answers
the controller once it is committed. What the accessory shows comes back the same way every
other change does: the bridge hands it each committed :class:`~pinpanel.changes.PinView`.

How a pin's state reads in the Home app, kind by kind:

========================  ==================================================================
switch, outlet            On is the pin's state
lightbulb, fan            On; on a pwm pin also Brightness / RotationSpeed (0-100 %) as level
garage_door               a write of the target pulses the pin; the door is closed while the
                          ``homekit_door`` input is on (else where it was last sent)
lock                      on is unlocked (a door strike): Unsecured; off is Secured
window_covering           a servo's angle as 0-100 % from min_angle to max_angle
contact                   on is "contact detected" (a closed door's reed switch)
motion, leak              on is motion / a leak detected
doorbell                  each change to on rings (a single press)
========================  ==================================================================
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from pyhap.accessory import Accessory
from pyhap.const import (
    CATEGORY_DOOR_LOCK,
    CATEGORY_FAN,
    CATEGORY_GARAGE_DOOR_OPENER,
    CATEGORY_LIGHTBULB,
    CATEGORY_OUTLET,
    CATEGORY_PROGRAMMABLE_SWITCH,
    CATEGORY_SENSOR,
    CATEGORY_SWITCH,
    CATEGORY_WINDOW_COVERING,
)
from pyhap.service import Service

from pinpanel import __version__
from pinpanel.board import Action, Board
from pinpanel.changes import Actor, PinView
from pinpanel.config import PinConfig
from pinpanel.sensor_config import SensorConfig
from pinpanel.sensors.model import Sample, quantities

#: A write from the Home app, bound to its pin: run with the controller's actor.
Request = Callable[[Board, Actor], Awaitable[object]]
Submit = Callable[[Request, "HomeAccessory"], None]

MANUFACTURER = "pinpanel"

# The service and its characteristics of each kind.
_SERVICES: dict[str, tuple[str, int]] = {
    "switch": ("Switch", CATEGORY_SWITCH), "outlet": ("Outlet", CATEGORY_OUTLET),
    "lightbulb": ("Lightbulb", CATEGORY_LIGHTBULB), "fan": ("Fan", CATEGORY_FAN),
    "garage_door": ("GarageDoorOpener", CATEGORY_GARAGE_DOOR_OPENER),
    "lock": ("LockMechanism", CATEGORY_DOOR_LOCK),
    "window_covering": ("WindowCovering", CATEGORY_WINDOW_COVERING),
    "contact": ("ContactSensor", CATEGORY_SENSOR), "motion": ("MotionSensor", CATEGORY_SENSOR),
    "leak": ("LeakSensor", CATEGORY_SENSOR),
    "doorbell": ("StatelessProgrammableSwitch", CATEGORY_PROGRAMMABLE_SWITCH),
}
_LEVEL_CHAR = {"lightbulb": "Brightness", "fan": "RotationSpeed"}
_OPEN, _CLOSED, _OPENING, _CLOSING = 0, 1, 2, 3
_UNSECURED, _SECURED = 0, 1
_STOPPED = 2
_NOT_ALLOWED = re.compile(r"[^\w '.,-]+")


def home_name(name: str) -> str:
    """A name the Home app accepts: letters, digits, spaces and simple punctuation, starting
    and ending with a letter or digit (iOS refuses others while adding the accessory)."""
    cleaned = _NOT_ALLOWED.sub(" ", name).strip(" '.,-_")
    return cleaned[:64] or "pin"


class HomeAccessory(Accessory):  # type: ignore[misc]
    """The base of pinpanel's accessories: the information service filled in alike."""

    def __init__(self, driver: Any, name: str, aid: int, serial: str, model: str) -> None:
        super().__init__(driver, home_name(name), aid=aid)
        self.set_info_service(firmware_revision=__version__, manufacturer=MANUFACTURER,
                              model=model, serial_number=serial)

    def show(self, view: PinView) -> None:
        """Show a committed change of this accessory's pin (sensors have none)."""

    def show_door(self, closed: bool) -> None:
        """Show the garage door input's change (only a garage door listens)."""


class PinAccessory(HomeAccessory):
    """A configured pin as the Home app's kind for it (``homekit_type``, or the default)."""

    def __init__(self, driver: Any, aid: int, pin: PinConfig, submit: Submit,
                 door: PinView | None = None) -> None:
        self.pin = pin
        self.kind = pin.homekit_kind
        service_name, self.category = _SERVICES[self.kind]
        super().__init__(driver, pin.name, aid, pin.id, f"GPIO{pin.pin} {pin.mode}")
        self._submit = submit
        level = _LEVEL_CHAR.get(self.kind) if pin.has_level else None
        chars = ["Name", *([level] if level else [])]
        self.service: Service = self.add_preload_service(service_name, chars=chars)
        self.service.configure_char("Name", value=home_name(pin.name))
        self._level_char = level
        self._door_closed: bool | None = door.state if door is not None else None
        self._last_on: bool | None = None
        if self.kind == "doorbell":
            self.service.configure_char("ProgrammableSwitchEvent",
                                        valid_values={"SinglePress": 0})
        elif self.kind == "outlet":
            self.service.configure_char("OutletInUse", value=True)
        elif self.kind == "garage_door":
            self.service.configure_char("ObstructionDetected", value=False)
            closed = self._door_closed is not False
            self._set("CurrentDoorState", _CLOSED if closed else _OPEN)
            self._set("TargetDoorState", _CLOSED if closed else _OPEN)
        elif self.kind == "window_covering":
            self._set("PositionState", _STOPPED)
        self.service.setter_callback = self._on_write

    # -- out: the board's committed state -----------------------------------------------

    def show(self, view: PinView) -> None:
        kind = self.kind
        if kind in ("switch", "outlet", "lightbulb", "fan"):
            self._set("On", view.state)
            if self._level_char and view.level:
                self._set(self._level_char, round(view.level * 100))
        elif kind == "lock":
            self._set("LockCurrentState", _UNSECURED if view.state else _SECURED)
            self._set("LockTargetState", _UNSECURED if view.state else _SECURED)
        elif kind == "window_covering":
            if view.angle is not None:
                span = self.pin.max_angle - self.pin.min_angle
                percent = round((view.angle - self.pin.min_angle) / span * 100)
                self._set("CurrentPosition", min(100, max(0, percent)))
                self._set("TargetPosition", min(100, max(0, percent)))
        elif kind == "contact":
            self._set("ContactSensorState", 0 if view.state else 1)
        elif kind == "motion":
            self._set("MotionDetected", view.state)
        elif kind == "leak":
            self._set("LeakDetected", 1 if view.state else 0)
        elif kind == "doorbell" and view.state and self._last_on is False:
            self.service.get_characteristic("ProgrammableSwitchEvent").set_value(0)
        self._last_on = view.state

    def show_door(self, closed: bool) -> None:
        """The door's input moved: the door is where it says, and so is the target (a wall
        button or the remote moved it as well as the Home app)."""
        self._door_closed = closed
        self._set("CurrentDoorState", _CLOSED if closed else _OPEN)
        self._set("TargetDoorState", _CLOSED if closed else _OPEN)

    # -- in: a controller's write -----------------------------------------------------------

    def _on_write(self, values: dict[str, Any]) -> None:
        """HAP-python's service callback: turn the written values into one board request."""
        request = self._request(values)
        if request is not None:
            self._submit(request, self)

    def _request(self, values: dict[str, Any]) -> Request | None:
        bcm, kind = self.pin.pin, self.kind
        if self._level_char and self._level_char in values:
            percent = float(values[self._level_char])
            if percent <= 0:
                return lambda board, actor: board.command(bcm, "off", actor)
            return lambda board, actor: board.set_level(bcm, percent / 100, actor)
        if "On" in values:
            action: Action = "on" if values["On"] else "off"
            return lambda board, actor: board.command(bcm, action, actor)
        if kind == "lock" and "LockTargetState" in values:
            unlock: Action = "on" if values["LockTargetState"] == _UNSECURED else "off"
            return lambda board, actor: board.command(bcm, unlock, actor)
        if kind == "window_covering" and "TargetPosition" in values:
            lo, hi = self.pin.min_angle, self.pin.max_angle
            angle = lo + (hi - lo) * float(values["TargetPosition"]) / 100
            return lambda board, actor: board.set_angle(bcm, angle, actor)
        if kind == "garage_door" and "TargetDoorState" in values:
            return self._door_request(values["TargetDoorState"] == _CLOSED)
        return None

    def _door_request(self, close: bool) -> Request | None:
        """A pulse moves the door (one button for open, stop and close, as on the wall)."""
        if self._door_closed is not None and self._door_closed == close:
            self._set("CurrentDoorState", _CLOSED if close else _OPEN)
            return None  # already there: a pulse would move it away
        bcm = self.pin.pin

        async def pulse(board: Board, actor: Actor) -> object:
            view = await board.pulse(bcm, None, actor)
            if self._door_closed is None:  # no input: it went where it was sent
                self._set("CurrentDoorState", _CLOSED if close else _OPEN)
            else:
                self._set("CurrentDoorState", _CLOSING if close else _OPENING)
            return view
        return pulse

    def _set(self, name: str, value: object) -> None:
        self.service.get_characteristic(name).set_value(value)


class SensorAccessory(HomeAccessory):
    """A ``[[sensors]]`` entry: a TemperatureSensor / HumiditySensor per such reading."""

    SERVICES: ClassVar[dict[str, tuple[str, str]]] = {
        "temperature": ("TemperatureSensor", "CurrentTemperature"),
        "humidity": ("HumiditySensor", "CurrentRelativeHumidity")}
    category = CATEGORY_SENSOR

    def __init__(self, driver: Any, aid: int, sensor: SensorConfig) -> None:
        super().__init__(driver, sensor.name, aid, sensor.id, sensor.kind)
        self.sensor = sensor
        self.readings: dict[str, Any] = {}  # quantity name -> its characteristic
        self._services: list[Service] = []
        for quantity in quantities(sensor):
            spec = self.SERVICES.get(quantity.device_class or "")
            if spec is None:
                continue
            service = self.add_preload_service(spec[0], chars=["Name", "StatusFault"])
            service.configure_char("Name", value=home_name(f"{sensor.name} {quantity.name}"))
            if spec[1] == "CurrentTemperature":
                service.configure_char(spec[1], properties={"minValue": -100, "maxValue": 200})
            self.readings[quantity.name] = service.get_characteristic(spec[1])
            self._services.append(service)

    @classmethod
    def shows_anything(cls, sensor: SensorConfig) -> bool:
        """Whether the Home app has a service for any of this sensor's readings."""
        return any(q.device_class in cls.SERVICES for q in quantities(sensor))

    def show_sample(self, sample: Sample) -> None:
        fault = 1 if sample.error else 0
        for service in self._services:
            service.get_characteristic("StatusFault").set_value(fault)
        for name, char in self.readings.items():
            value = sample.values.get(name)
            if value is not None:
                char.set_value(round(float(value), 1))
