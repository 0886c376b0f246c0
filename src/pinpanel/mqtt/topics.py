"""Topic names and payload words, kept as constants so code, tests and README agree.

Per device (``<base>`` is ``mqtt.base_topic``, default ``pinpanel/<device_id>``):

==============================  =========  ==================================================
topic                           retained   payload
==============================  =========  ==================================================
``<base>/status``               yes        ``online`` / ``offline`` (last will: ``offline``)
``<base>/<pin id>/attributes``  yes        the pin as ``GET /api/v1/pins/<pin>`` shows it
                                           (``state``, ``seq``, ``changed_at``...), one JSON
                                           message per committed change; Home Assistant
                                           reads only this topic
``<base>/<pin id>/state``       yes        ``ON`` / ``OFF`` for scripts, sent right after
``<base>/<pin id>/set``         no         ``ON``, ``OFF``, ``TOGGLE``, ``PULSE`` or JSON
``<base>/<pin id>/level``       yes        a pwm pin's level, ``0.0``-``1.0``, after state
``<base>/<pin id>/level/set``   no         a level, ``0.0``-``1.0`` (a number)
``<base>/<pin id>/angle``       yes        a servo's angle, or ``null`` when detached
``<base>/<pin id>/angle/set``   no         an angle, or ``null`` (or empty): detach
``<base>/group/<id>/set``       no         ``ON``, ``OFF`` or ``TOGGLE``: the whole group in
                                           one commit (``all`` is every output)
``<base>/scene/<id>/set``       no         ``ON`` (or empty): apply the scene, one commit
``<base>/device``               yes        who this Pi is (JSON; :mod:`pinpanel.fleetwire`)
``<base>/refresh``              no         anything: publish everything again (also on
                                           ``pinpanel/fleet/refresh``)
``<base>/result``               no         the answer to a JSON command with an ``id``
==============================  =========  ==================================================

Home Assistant: ``<discovery_prefix>/<platform>/<object id>/<pin id>/config`` (retained,
one per entity) and its birth message on ``<discovery_prefix>/status``.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from pinpanel.config import MqttConfig
from pinpanel.errors import ConfigError

STATUS = "status"
STATE = "state"
LEVEL = "level"
ANGLE = "angle"
#: The value topics, by the pin mode that has one.
VALUE_OF_MODE = {"pwm": LEVEL, "servo": ANGLE}
ATTRIBUTES = "attributes"
SET = "set"
GROUP = "group"
SCENE = "scene"
ONLINE = "online"
OFFLINE = "offline"
ON = "ON"
OFF = "OFF"
#: The component part of a Home Assistant device-based discovery topic (pinpanel published
#: one before it moved to per-entity discovery; the topic is still needed to migrate).
HA_DEVICE = "device"
HA_CONFIG = "config"

_UNSAFE = re.compile(r"[^a-z0-9_-]+")


def sanitise_id(text: str) -> str:
    """Lowercase letters, digits, ``-`` and ``_`` only: safe in topics and HA object ids.

    A host name such as ``Kitchen.Pi`` becomes ``kitchen-pi``; MQTT wildcards (``+``, ``#``)
    and ``/`` can never reach a topic through it.
    """
    cleaned = _UNSAFE.sub("-", text.strip().lower()).strip("-_")
    return cleaned[:64] or "pinpanel"


def default_device_id() -> str:
    return sanitise_id(socket.gethostname().split(".")[0])


@dataclass(frozen=True)
class Topics:
    """Every topic one device uses, derived once from the ``[mqtt]`` section."""

    device_id: str
    base: str
    discovery_prefix: str

    @classmethod
    def of(cls, mqtt: MqttConfig) -> Topics:
        """Resolve defaults; refuse wildcards, which would make a topic a filter."""
        device_id = sanitise_id(mqtt.device_id) if mqtt.device_id else default_device_id()
        base = mqtt.base_topic.strip().strip("/") or f"pinpanel/{device_id}"
        prefix = mqtt.discovery_prefix.strip().strip("/") or "homeassistant"
        problems = [f"mqtt.{name}: {value!r} must not contain MQTT wildcards (+ or #)"
                    for name, value in (("base_topic", base), ("discovery_prefix", prefix))
                    if "+" in value or "#" in value]
        if problems:
            raise ConfigError(problems, "mqtt")
        return cls(device_id=device_id, base=base, discovery_prefix=prefix)

    @property
    def status(self) -> str:
        return f"{self.base}/{STATUS}"

    def state(self, pin_id: str) -> str:
        return f"{self.base}/{pin_id}/{STATE}"

    def attributes(self, pin_id: str) -> str:
        return f"{self.base}/{pin_id}/{ATTRIBUTES}"

    def command(self, pin_id: str) -> str:
        return f"{self.base}/{pin_id}/{SET}"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/{SET}"

    def value(self, pin_id: str, kind: str) -> str:
        """``<base>/<pin>/level`` or ``/angle``: a pwm level or servo angle, retained."""
        return f"{self.base}/{pin_id}/{kind}"

    def value_command(self, pin_id: str, kind: str) -> str:
        return f"{self.base}/{pin_id}/{kind}/{SET}"

    @property
    def value_filters(self) -> tuple[str, str]:
        return f"{self.base}/+/{LEVEL}/{SET}", f"{self.base}/+/{ANGLE}/{SET}"

    def value_of_command(self, topic: str) -> tuple[str, str] | None:
        """(pin, ``level`` or ``angle``) of ``<base>/<pin>/level|angle/set``; else None."""
        head = f"{self.base}/"
        tail = f"/{SET}"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        pin, _, kind = topic[len(head):-len(tail)].partition("/")
        if kind not in (LEVEL, ANGLE) or not pin or pin in (GROUP, SCENE):
            return None
        return pin, kind

    def pin_of_command(self, topic: str) -> str | None:
        """The pin part of ``<base>/<pin>/set``, or None for any other topic."""
        head = f"{self.base}/"
        tail = f"/{SET}"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        pin = topic[len(head):-len(tail)]
        return pin if pin and "/" not in pin else None

    def group_command(self, group_id: str) -> str:
        return f"{self.base}/{GROUP}/{group_id}/{SET}"

    def scene_command(self, scene_id: str) -> str:
        return f"{self.base}/{SCENE}/{scene_id}/{SET}"

    @property
    def group_filters(self) -> tuple[str, str]:
        """The group and scene command topics, as subscription filters."""
        return f"{self.base}/{GROUP}/+/{SET}", f"{self.base}/{SCENE}/+/{SET}"

    def target_of_command(self, topic: str) -> tuple[str, str] | None:
        """(``group`` or ``scene``, id) of ``<base>/group|scene/<id>/set``; else None."""
        head = f"{self.base}/"
        tail = f"/{SET}"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        kind, _, name = topic[len(head):-len(tail)].partition("/")
        if kind not in (GROUP, SCENE) or not name or "/" in name:
            return None
        return kind, name

    @property
    def object_id(self) -> str:
        """The device's id in Home Assistant: stable while ``device_id`` is."""
        return f"pinpanel_{self.device_id}"

    def discovery(self, platform: str, pin_id: str) -> str:
        """One entity's discovery topic; the device's object id is its node id.

        Home Assistant identifies a discovered entity by (platform, "node object"), which
        here is the same pair a device-based message gives the component ``pin_id`` of the
        device ``object_id``: what lets Home Assistant hand an entity over between the two.
        """
        return f"{self.discovery_prefix}/{platform}/{self.object_id}/{pin_id}/{HA_CONFIG}"

    @property
    def device_discovery(self) -> str:
        """Where pinpanel before per-entity discovery published its device-based message."""
        return f"{self.discovery_prefix}/{HA_DEVICE}/{self.object_id}/{HA_CONFIG}"

    @property
    def ha_status(self) -> str:
        """Where Home Assistant announces itself (its birth message: ``online``)."""
        return f"{self.discovery_prefix}/{STATUS}"

    def unique_id(self, pin_id: str) -> str:
        return f"{self.object_id}_{pin_id}"
